/**
 * sysprep.inf and CmdLines.txt (Windows XP / 2003): INI files edited line by line, so that
 * everything the image's file says and does not concern snf-image stays as it was.
 * Sections and keys are case-insensitive, as Windows reads them.
 */

export class IniFile {
  private lines: string[];

  constructor(text: string) {
    this.lines = text.replace(/\r\n/g, '\n').replace(/\n$/, '').split('\n');
    if (this.lines.length === 1 && this.lines[0] === '') this.lines = [];
  }

  private sectionRange(section: string): [number, number] | undefined {
    const start = this.lines.findIndex((l) => l.trim().toLowerCase() === `[${section.toLowerCase()}]`);
    if (start < 0) return undefined;
    let end = start + 1;
    while (end < this.lines.length && !/^\s*\[/.test(this.lines[end] as string)) end++;
    return [start, end];
  }

  private keyLine(section: string, key: string): number | undefined {
    const range = this.sectionRange(section);
    if (!range) return undefined;
    for (let i = range[0] + 1; i < range[1]; i++) {
      // The key is what comes before the first '=', trimmed, when it holds no ';' (a comment).
      // Not /^\s*([^=;]+?)\s*=/: it backtracks in cubic time over a long blank line.
      const line = this.lines[i] as string;
      const eq = line.indexOf('=');
      const name = eq < 0 ? '' : line.slice(0, eq);
      if (!name.includes(';') && name.trim() !== '' && name.trim().toLowerCase() === key.toLowerCase()) return i;
    }
    return undefined;
  }

  get(section: string, key: string): string | undefined {
    const i = this.keyLine(section, key);
    if (i === undefined) return undefined;
    return (this.lines[i] as string)
      .replace(/^[^=]*=\s*/, '')
      .replace(/^"(.*)"$/, '$1')
      .trim();
  }

  set(section: string, key: string, value: string): void {
    const line = `${key}=${value}`;
    const i = this.keyLine(section, key);
    if (i !== undefined) {
      this.lines[i] = line;
      return;
    }
    this.append(section, line);
  }

  /** Lines of a section that are not comments or blank (CmdLines.txt commands). */
  entries(section: string): string[] {
    const range = this.sectionRange(section);
    if (!range) return [];
    return this.lines
      .slice(range[0] + 1, range[1])
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith(';'));
  }

  /** Removes the lines of a section equal (ignoring case and blanks) to this one. */
  remove(section: string, line: string): void {
    const range = this.sectionRange(section);
    if (!range) return;
    const kept = this.lines
      .slice(range[0] + 1, range[1])
      .filter((l) => l.trim().toLowerCase() !== line.trim().toLowerCase());
    this.lines.splice(range[0] + 1, range[1] - range[0] - 1, ...kept);
  }

  /** Adds a line at the end of a section (created when missing). */
  append(section: string, line: string): void {
    const range = this.sectionRange(section);
    if (!range) {
      if (this.lines.length > 0 && this.lines.at(-1)?.trim() !== '') this.lines.push('');
      this.lines.push(`[${section}]`, line);
      return;
    }
    let at = range[1];
    while (at > range[0] + 1 && (this.lines[at - 1] as string).trim() === '') at--;
    this.lines.splice(at, 0, line);
  }

  toString(): string {
    return `${this.lines.join('\r\n')}\r\n`;
  }
}

/** The sysprep.inf snf-image installs when the image has none (or IGNORE_UNATTEND is set). */
export function builtInSysprepInf(timeZone: string): string {
  const lines = [
    '[Unattended]',
    'OemSkipEula=Yes',
    'InstallFilesPath=C:\\sysprep\\i386',
    'UpdateInstalledDrivers=Yes',
    '',
    '[GuiUnattended]',
    'OEMSkipRegional=1',
    'OemSkipWelcome=1',
    // XP takes a numeric time zone index; a Vista-style name cannot be used here.
    ...(/^\d+$/.test(timeZone) ? [`TimeZone=${timeZone}`] : []),
    '',
    '[UserData]',
    'FullName="User"',
    'OrgName="Organization"',
    'ComputerName=*',
    '',
    '[Identification]',
    'JoinWorkgroup=WORKGROUP',
    '',
    '[Networking]',
    'InstallDefaultComponents=Yes',
  ];
  return `${lines.join('\r\n')}\r\n`;
}
