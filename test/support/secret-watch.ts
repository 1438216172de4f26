/**
 * Watches every process on the machine while something runs, for a secret in a command line
 * or in an environment. Ganeti hands secrets to the OS scripts in their environment, so the
 * script's own executable is allowed to carry it there; none of its children (QEMU, mke2fs,
 * sfdisk, ...) and no command line may, apart from the watched command's own process tree
 * (gnt-instance takes --os-parameters-secret on its command line: the administrator's choice).
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

export interface SecretWatchReport {
  /** How many times /proc was scanned. */
  scans: number;
  /** Processes seen with the secret in their environment that were the allowed executable. */
  allowedHolders: number;
  /** "pid exe: where" for every process that had the secret where it must not be. */
  leaks: string[];
}

function read(path: string): string {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return ''; // the process ended, or a kernel thread
  }
}

export class SecretWatch {
  readonly #secret: string;
  readonly #allowedExe: string;
  /** Root of the process tree that is not watched (the command the test started). */
  ignoredRoot: number | undefined;
  readonly #timer: NodeJS.Timeout;
  readonly #seenAllowed = new Set<number>();
  readonly #leaks = new Set<string>();
  #scans = 0;

  constructor(secret: string, allowedExe: string, everyMs = 100) {
    this.#secret = secret;
    this.#allowedExe = allowedExe;
    this.#timer = setInterval(() => this.scan(), everyMs);
  }

  /** One pass over /proc (the timer calls it; tests may call it directly). */
  scan(): void {
    this.#scans += 1;
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const pid = Number(entry);
      if (pid === process.pid || this.#inIgnoredTree(pid)) continue;
      let exe = '?';
      try {
        exe = readlinkSync(`/proc/${pid}/exe`);
      } catch {
        // gone, or a kernel thread
      }
      if (read(`/proc/${pid}/cmdline`).includes(this.#secret)) this.#leaks.add(`${pid} ${exe}: command line`);
      if (read(`/proc/${pid}/environ`).includes(this.#secret)) {
        if (exe === this.#allowedExe) this.#seenAllowed.add(pid);
        else this.#leaks.add(`${pid} ${exe}: environment`);
      }
    }
  }

  #inIgnoredTree(pid: number): boolean {
    if (this.ignoredRoot === undefined) return false;
    for (let p = pid, hops = 0; p > 1 && hops < 64; hops += 1) {
      if (p === this.ignoredRoot) return true;
      // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces and parentheses
      const stat = read(`/proc/${p}/stat`);
      p = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!Number.isInteger(p)) return false;
    }
    return false;
  }

  stop(): SecretWatchReport {
    clearInterval(this.#timer);
    return { scans: this.#scans, allowedHolders: this.#seenAllowed.size, leaks: [...this.#leaks] };
  }
}
