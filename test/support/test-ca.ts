/**
 * Test certificate authorities made by openssl in a test's own directory: a CA (key + self-signed
 * certificate) and server certificates it signs. Used by the https and ftps tests.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

export class TestCa {
  private readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  private openssl(...args: string[]): void {
    execFileSync('openssl', args, { cwd: this.dir, stdio: ['ignore', 'ignore', 'pipe'] });
  }

  /** A CA named `name`: `<name>.key` and `<name>.pem` in the directory, valid for two days. */
  makeCa(name: string, subject = `/CN=snf-image test ${name}`): void {
    this.openssl(
      'req',
      '-x509',
      ...EC_KEY,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.pem`,
      '-subj',
      subject,
      '-days',
      '2',
    );
  }

  /**
   * A server certificate `<name>.pem` (key `<name>.key`) signed by the CA `ca`, for the names in
   * `san` (e.g. `IP:127.0.0.1`), valid for `days` (negative: already expired).
   */
  makeServerCert(name: string, ca: string, san: string, days = 2, subject = `/CN=${name}`): void {
    this.openssl('req', ...EC_KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
    writeFileSync(join(this.dir, `${name}.ext`), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\n`);
    this.openssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${ca}.pem`,
      '-CAkey',
      `${ca}.key`,
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      String(days),
      '-extfile',
      `${name}.ext`,
    );
  }
}
