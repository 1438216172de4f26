/**
 * Which network configuration system the mounted guest uses, and how it can name an
 * interface after its MAC address. Everything is read from the guest tree (never the
 * helper's own system); paths are resolved inside the guest.
 *
 * Rules, first match wins:
 *
 * 1. NetworkManager when the image property NM_NETWORKING is yes (upstream's property: the
 *    image says so explicitly, which beats any guess).
 * 2. netplan when /etc/netplan holds *.yaml / *.yml files, or netplan is installed
 *    (/usr/sbin/netplan or /sbin/netplan). Checked before the services because netplan
 *    generates the configuration of NetworkManager or systemd-networkd itself: writing
 *    theirs directly would fight netplan's.
 * 3. NetworkManager when its service is enabled: NetworkManager.service linked in a
 *    /etc/systemd/system/<unit>.wants directory, or the dbus-org.freedesktop.NetworkManager
 *    alias present.
 * 4. systemd-networkd when enabled: systemd-networkd.service in a .wants directory, or the
 *    dbus-org.freedesktop.network1 alias. (Debian ships it installed but disabled: being
 *    installed means nothing.)
 * 5. ifupdown when /etc/network/interfaces exists or ifup is installed (/sbin/ifup,
 *    /usr/sbin/ifup).
 * 6. ifcfg when /etc/sysconfig/network-scripts is a directory (Red Hat family network
 *    scripts; NetworkManager with its ifcfg-rh plugin reads the same files).
 * 7. NetworkManager when it is installed (/usr/sbin/NetworkManager) but not enabled in the
 *    image: images built with an empty machine id get their services enabled by presets at
 *    first boot.
 *
 * Nothing matched: no system (the task warns and changes nothing).
 *
 * Naming (how an interface gets the name snf<i> from its MAC address):
 * 'link' when the guest has systemd-udevd (systemd .link files), 'udev-rule' when it has
 * another udev (eudev, the udev of Red Hat 6: a NAME= rule), 'none' otherwise.
 */
import { lstatSync, readdirSync } from 'node:fs';
import { isYes } from '../context.ts';
import type { GuestFs } from '../guest-files.ts';

export type NetworkSystem = 'netplan' | 'networkmanager' | 'networkd' | 'ifupdown' | 'ifcfg';

export interface Detection {
  system?: NetworkSystem;
  /** Why this system (or why none): for the log. */
  why: string;
}

export type Naming = 'link' | 'udev-rule' | 'none';

/** True when the path itself exists in the guest (a link counts even when it dangles). */
export function present(fs: GuestFs, guestPath: string): boolean {
  try {
    lstatSync(fs.path(guestPath, false));
    return true;
  } catch {
    return false;
  }
}

/** Entry names of a guest directory ([] when it is missing or not a directory). */
export function listDir(fs: GuestFs, guestPath: string): string[] {
  if (!fs.isDirectory(guestPath)) return [];
  try {
    return readdirSync(fs.path(guestPath)).sort();
  } catch {
    return [];
  }
}

const UNITS = '/etc/systemd/system';

/** Whether a unit is enabled in the guest: linked in some <unit>.wants directory, or its D-Bus alias exists. */
function unitEnabled(fs: GuestFs, unit: string, alias?: string): boolean {
  if (alias && present(fs, `${UNITS}/${alias}`)) return true;
  for (const dir of listDir(fs, UNITS).filter((d) => d.endsWith('.wants'))) {
    if (present(fs, `${UNITS}/${dir}/${unit}`)) return true;
  }
  return false;
}

export function netplanFiles(fs: GuestFs): string[] {
  return listDir(fs, '/etc/netplan').filter((f) => /\.ya?ml$/.test(f));
}

export function detectNetworkSystem(fs: GuestFs, properties: Readonly<Record<string, string>> = {}): Detection {
  if (isYes(properties.NM_NETWORKING)) return { system: 'networkmanager', why: 'image property NM_NETWORKING=yes' };
  if (netplanFiles(fs).length > 0) return { system: 'netplan', why: '/etc/netplan has configuration files' };
  for (const path of ['/usr/sbin/netplan', '/sbin/netplan'])
    if (present(fs, path)) return { system: 'netplan', why: `${path} is installed` };
  if (unitEnabled(fs, 'NetworkManager.service', 'dbus-org.freedesktop.NetworkManager.service'))
    return { system: 'networkmanager', why: 'NetworkManager.service is enabled' };
  if (unitEnabled(fs, 'systemd-networkd.service', 'dbus-org.freedesktop.network1.service'))
    return { system: 'networkd', why: 'systemd-networkd.service is enabled' };
  if (present(fs, '/etc/network/interfaces')) return { system: 'ifupdown', why: '/etc/network/interfaces exists' };
  for (const path of ['/sbin/ifup', '/usr/sbin/ifup'])
    if (present(fs, path)) return { system: 'ifupdown', why: `${path} is installed` };
  if (fs.isDirectory('/etc/sysconfig/network-scripts'))
    return { system: 'ifcfg', why: '/etc/sysconfig/network-scripts exists' };
  for (const path of ['/usr/sbin/NetworkManager', '/sbin/NetworkManager'])
    if (present(fs, path)) return { system: 'networkmanager', why: `${path} is installed (not enabled in the image)` };
  return { why: 'no netplan, NetworkManager, systemd-networkd, ifupdown or network-scripts found in the image' };
}

export function detectNaming(fs: GuestFs): Naming {
  for (const path of ['/lib/systemd/systemd-udevd', '/usr/lib/systemd/systemd-udevd'])
    if (present(fs, path)) return 'link';
  for (const path of ['/sbin/udevd', '/usr/sbin/udevd', '/lib/udev/udevd']) if (present(fs, path)) return 'udev-rule';
  return 'none';
}
