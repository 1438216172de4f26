/**
 * Windows (Vista and later) answer files: the built-in unattend.xml, and the edits the
 * tasks make to whichever answer file is used (specialize-pass commands, ComputerName,
 * ProductKey, the local accounts it creates). Components are per processor architecture;
 * the edits go to the image's architecture, components are created when missing.
 */
import {
  appendChild,
  attribute,
  element,
  elementChildren,
  localName,
  parseXml,
  setText,
  textElement,
  textOf,
  writeXml,
  XmlError,
  type XmlDocument,
  type XmlElement,
} from './xml.ts';

export type WindowsArch = 'amd64' | 'x86';

const WCM = 'http://schemas.microsoft.com/WMIConfig/2002/State';
const XSI = 'http://www.w3.org/2001/XMLSchema-instance';

export class AnswerFileError extends Error {}

/** Parses an answer file; the root must be <unattend>. */
export function parseUnattend(text: string, source: string): XmlDocument {
  let doc: XmlDocument;
  try {
    doc = parseXml(text);
  } catch (error) {
    if (error instanceof XmlError)
      throw new AnswerFileError(`the answer file ${source} is not well-formed XML: ${error.message}`);
    throw error;
  }
  if (localName(doc.root.name) !== 'unattend')
    throw new AnswerFileError(`the answer file ${source} has the root element <${doc.root.name}>, not <unattend>`);
  return doc;
}

export function serializeUnattend(doc: XmlDocument): string {
  return writeXml(doc).replace(/\r?\n/g, '\r\n');
}

const escapeXml = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function componentOpen(name: string, arch: WindowsArch): string {
  return `<component name="${name}" processorArchitecture="${arch}" publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS" xmlns:wcm="${WCM}" xmlns:xsi="${XSI}">`;
}

/** The answer file snf-image installs when the image has none (or IGNORE_UNATTEND is set). */
export function builtInUnattend(timeZone: string): string {
  const specialize = (arch: WindowsArch) => `
        ${componentOpen('Microsoft-Windows-Shell-Setup', arch)}
            <ComputerName>*</ComputerName>
            <TimeZone>${escapeXml(timeZone)}</TimeZone>
        </component>
        ${componentOpen('Microsoft-Windows-Deployment', arch)}
            <RunSynchronous>
                <RunSynchronousCommand wcm:action="add">
                    <Order>1</Order>
                    <Description>Install updates automatically</Description>
                    <Path>reg add "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\WindowsUpdate\\Auto Update" /v AUOptions /t REG_DWORD /d 4 /f</Path>
                </RunSynchronousCommand>
                <RunSynchronousCommand wcm:action="add">
                    <Order>2</Order>
                    <Description>Do not ask for a user account at first boot</Description>
                    <Path>reg add "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Setup\\OOBE" /v UnattendCreatedUser /t REG_DWORD /d 1 /f</Path>
                </RunSynchronousCommand>
            </RunSynchronous>
        </component>`;
  const oobe = (arch: WindowsArch) => `
        ${componentOpen('Microsoft-Windows-International-Core', arch)}
            <InputLocale>en-US</InputLocale>
            <SystemLocale>en-US</SystemLocale>
            <UILanguage>en-US</UILanguage>
            <UserLocale>en-US</UserLocale>
        </component>
        ${componentOpen('Microsoft-Windows-Shell-Setup', arch)}
            <OOBE>
                <HideEULAPage>true</HideEULAPage>
                <NetworkLocation>Other</NetworkLocation>
                <ProtectYourPC>1</ProtectYourPC>
            </OOBE>
            <Display>
                <ColorDepth>24</ColorDepth>
                <HorizontalResolution>1024</HorizontalResolution>
                <VerticalResolution>768</VerticalResolution>
            </Display>
        </component>`;
  return `<?xml version="1.0" encoding="utf-8"?>
<unattend xmlns="urn:schemas-microsoft-com:unattend">
    <settings pass="specialize">${specialize('amd64')}${specialize('x86')}
    </settings>
    <settings pass="oobeSystem">${oobe('amd64')}${oobe('x86')}
    </settings>
</unattend>
`;
}

function settingsFor(doc: XmlDocument, pass: string): XmlElement {
  const found = elementChildren(doc.root, 'settings').find((s) => attribute(s, 'pass') === pass);
  if (found) return found;
  const created = element('settings', [['pass', pass]]);
  appendChild(doc.root, created, 0);
  return created;
}

function componentFor(doc: XmlDocument, pass: string, name: string, arch: WindowsArch): XmlElement {
  const settings = settingsFor(doc, pass);
  const found = elementChildren(settings, 'component').find(
    (c) => attribute(c, 'name') === name && (attribute(c, 'processorArchitecture') ?? arch) === arch,
  );
  if (found) return found;
  const created = element('component', [
    ['name', name],
    ['processorArchitecture', arch],
    ['publicKeyToken', '31bf3856ad364e35'],
    ['language', 'neutral'],
    ['versionScope', 'nonSxS'],
    ['xmlns:wcm', WCM],
    ['xmlns:xsi', XSI],
  ]);
  appendChild(settings, created, 1);
  return created;
}

function childFor(parent: XmlElement, name: string, depth: number): XmlElement {
  const found = elementChildren(parent, name)[0];
  if (found) return found;
  const created = element(name);
  appendChild(parent, created, depth);
  return created;
}

/** Sets a value of Microsoft-Windows-Shell-Setup in the specialize pass (ComputerName, ProductKey). */
export function setShellSetup(
  doc: XmlDocument,
  arch: WindowsArch,
  name: 'ComputerName' | 'ProductKey',
  value: string,
): void {
  const component = componentFor(doc, 'specialize', 'Microsoft-Windows-Shell-Setup', arch);
  setText(childFor(component, name, 2), value);
}

export interface SpecializeCommand {
  description: string;
  path: string;
}

/** The specialize RunSynchronous commands of one architecture, in Order. */
export function specializeCommands(doc: XmlDocument, arch: WindowsArch): Array<SpecializeCommand & { order: number }> {
  const settings = elementChildren(doc.root, 'settings').find((s) => attribute(s, 'pass') === 'specialize');
  const component =
    settings &&
    elementChildren(settings, 'component').find(
      (c) =>
        attribute(c, 'name') === 'Microsoft-Windows-Deployment' &&
        (attribute(c, 'processorArchitecture') ?? arch) === arch,
    );
  const list = component && elementChildren(component, 'RunSynchronous')[0];
  if (!list) return [];
  return elementChildren(list, 'RunSynchronousCommand')
    .map((c) => ({
      order: Number(textOf(elementChildren(c, 'Order')[0] ?? element('Order')).trim()),
      path: textOf(elementChildren(c, 'Path')[0] ?? element('Path')).trim(),
      description: textOf(elementChildren(c, 'Description')[0] ?? element('Description')).trim(),
    }))
    .sort((a, b) => a.order - b.order);
}

/** Adds a specialize-pass command after the existing ones, unless the same command is there. */
export function addSpecializeCommand(doc: XmlDocument, arch: WindowsArch, command: SpecializeCommand): boolean {
  const existing = specializeCommands(doc, arch);
  if (existing.some((c) => c.path.toLowerCase() === command.path.toLowerCase())) return false;
  const orders = existing.map((c) => c.order).filter((o) => Number.isFinite(o));
  const component = componentFor(doc, 'specialize', 'Microsoft-Windows-Deployment', arch);
  const list = childFor(component, 'RunSynchronous', 2);
  const entry = element('RunSynchronousCommand', [['wcm:action', 'add']]);
  appendChild(entry, textElement('Order', String(orders.length > 0 ? Math.max(...orders) + 1 : 1)), 4);
  appendChild(entry, textElement('Description', command.description), 4);
  appendChild(entry, textElement('Path', command.path), 4);
  appendChild(list, entry, 3);
  return true;
}

/** Names of the local accounts the answer file creates (LocalAccount wcm:action="add"). */
export function localAccountNames(doc: XmlDocument): string[] {
  const names: string[] = [];
  const walk = (el: XmlElement) => {
    for (const child of elementChildren(el)) {
      if (localName(child.name) === 'LocalAccount' && attribute(child, 'action') === 'add') {
        const name = elementChildren(child, 'Name')[0];
        if (name) names.push(textOf(name).trim());
      }
      walk(child);
    }
  };
  walk(doc.root);
  return names;
}

/** The text of a Shell-Setup specialize value of one architecture (for tests and logs). */
export function shellSetupValue(doc: XmlDocument, arch: WindowsArch, name: string): string | undefined {
  const settings = elementChildren(doc.root, 'settings').find((s) => attribute(s, 'pass') === 'specialize');
  const component =
    settings &&
    elementChildren(settings, 'component').find(
      (c) =>
        attribute(c, 'name') === 'Microsoft-Windows-Shell-Setup' &&
        (attribute(c, 'processorArchitecture') ?? arch) === arch,
    );
  const value = component && elementChildren(component, name)[0];
  return value ? textOf(value) : undefined;
}
