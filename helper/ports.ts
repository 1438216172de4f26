/**
 * The helper's serial ports: ttyS0 console (stdout/stderr), ttyS1 result (SUCCESS or
 * "ERROR: ..."), ttyS2 monitor protocol lines. Outside a VM (tests) they are files.
 */
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { formatEvent, type HelperEvent } from '../src/helper-vm/monitor-protocol.ts';

export interface Ports {
  event(event: HelperEvent): void;
  result(line: string): void;
  console(line: string): void;
  close(): void;
}

export function openPorts(resultPath = '/dev/ttyS1', monitorPath = '/dev/ttyS2'): Ports {
  const result = openSync(resultPath, 'w');
  const monitor = openSync(monitorPath, 'w');
  const write = (fd: number, text: string) => {
    writeSync(fd, text);
    try {
      fsyncSync(fd);
    } catch {
      // ttys cannot be fsynced
    }
  };
  return {
    event: (event) => write(monitor, `${formatEvent(event)}\n`),
    result: (line) => write(result, `${line.replace(/[\r\n]+/g, ' ')}\n`),
    console: (line) => void process.stdout.write(`${line}\n`),
    close: () => {
      closeSync(result);
      closeSync(monitor);
    },
  };
}
