/**
 * Windows computer names (NetBIOS rules): the first label of the instance name, at most 15
 * bytes, none of the characters Windows refuses, not only digits.
 */
import { TaskError } from '../exec.ts';

const INVALID = /[\\/:*?"<>|,~!@#$%^&'.(){}_\s]/;

export function computerNameFor(hostname: string): string {
  const name = hostname.split('.')[0] ?? '';
  const where = `the instance name ${JSON.stringify(hostname)} gives the Windows computer name ${JSON.stringify(name)}, which`;
  if (name === '') throw new TaskError(`${where} is empty`);
  if (Buffer.byteLength(name, 'utf8') > 15) throw new TaskError(`${where} is longer than 15 bytes (the NetBIOS limit)`);
  const bad = INVALID.exec(name);
  if (bad) throw new TaskError(`${where} contains ${JSON.stringify(bad[0])} (not allowed in a NetBIOS name)`);
  if (/^\d+$/.test(name)) throw new TaskError(`${where} is all digits`);
  return name;
}
