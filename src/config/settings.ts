/**
 * Every configuration key of /etc/snf-image/snf-image.conf and the variant files: name,
 * default, one-line description and the zod rule that turns its text into a typed value.
 * This table drives parsing, `snf-image config`, the shipped configuration file and the docs.
 */
import { z } from 'zod';

const yesNo = z
  .string()
  .transform((v) => v.trim().toLowerCase())
  .pipe(z.enum(['yes', 'no', 'true', 'false', 'on', 'off', '1', '0', ''], { error: 'must be yes or no' }))
  .transform((v) => ['yes', 'true', 'on', '1'].includes(v));

/** Whole numbers stay exact: beyond 2^53 a number is rounded. */
const SAFE_MAX = { error: `must be at most ${Number.MAX_SAFE_INTEGER}` };
const wholeNumber = z
  .string()
  .regex(/^\d+$/, { error: 'must be a whole number' })
  .transform(Number)
  .refine(Number.isSafeInteger, SAFE_MAX);
const positiveInt = wholeNumber.pipe(z.number().int().positive({ error: 'must be greater than 0' }));

/**
 * Durations as timeout(1) takes them: a number with an optional s, m, h or d suffix, at most
 * 24 days (Node's timers hold 2^31-1 ms; a longer one fires after 1 ms).
 */
const duration = z
  .string()
  .regex(/^\d+(\.\d+)?[smhd]?$/, { error: 'must be a duration like 120, 90s, 5m or 1h' })
  .transform((v) => {
    const unit = /[smhd]$/.test(v) ? v.slice(-1) : 's';
    const factor: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
    return Number(unit === 's' && !v.endsWith('s') ? v : v.slice(0, -1)) * (factor[unit] ?? 1);
  })
  .refine((seconds) => seconds <= 24 * 86400, { error: 'must be at most 24d' });

const absolutePath = z.string().regex(/^\//, { error: 'must be an absolute path' });
const optionalPath = z
  .string()
  .refine((v) => v === '' || v.startsWith('/'), { error: 'must be empty or an absolute path' });
const wordList = z.string().transform((v) => v.split(/\s+/).filter(Boolean));
const sizeBytes = z
  .string()
  .regex(/^\d+[KMGT]?$/i, { error: 'must be a size like 512M or 20G' })
  .transform((v) => {
    const m = /^(\d+)([KMGT]?)$/i.exec(v) as RegExpExecArray;
    const exp = ' KMGT'.indexOf((m[2] || ' ').toUpperCase());
    return Number(m[1]) * 1024 ** exp;
  })
  .refine(Number.isSafeInteger, SAFE_MAX);

/** FIRST-LAST user ids, or empty. Ids below 1000 belong to the system; 4294967295 is not a uid. */
const uidRange = z
  .string()
  .regex(/^(\d+-\d+)?$/, { error: 'must be a range of user ids like 1879048192-1879113727, or empty' })
  .transform((v) => {
    if (v === '') return undefined;
    const [first, last] = v.split('-').map(Number) as [number, number];
    return { first, last };
  })
  .refine((r) => r === undefined || (r.first >= 1000 && r.first <= r.last && r.last < 4294967295), {
    error: 'must be FIRST-LAST with 1000 <= FIRST <= LAST < 4294967295',
  });

const NIC_CONFIG_VALUES = [
  '',
  'dhcp',
  'dhcpv6',
  'slaac',
  'slaac_dhcp',
  'dhcp+dhcpv6',
  'dhcp+slaac',
  'dhcp+slaac_dhcp',
] as const;

interface SettingSpec<T extends z.ZodType<unknown, string>> {
  default: string;
  description: string;
  schema: T;
}

function setting<T extends z.ZodType<unknown, string>>(def: string, description: string, schema: T): SettingSpec<T> {
  return { default: def, description, schema };
}

export const SETTINGS = {
  HELPER_DIR: setting(
    '/var/lib/snf-image/helper',
    'Directory holding the helper VM (kernel, initrd, root.img, manifest.json), built by snf-image-update-helper',
    absolutePath,
  ),
  HELPER_SOFT_TIMEOUT: setting(
    '120',
    'Time the helper VM may run before it is sent SIGTERM (s, m, h or d suffix)',
    duration,
  ),
  HELPER_HARD_TIMEOUT: setting('5', 'Extra time after SIGTERM before the helper VM is killed', duration),
  HELPER_USER: setting(
    'nobody',
    'Unprivileged user (not root) the helper VM (QEMU) and the image converter (qemu-img convert) run as when HELPER_UIDS is empty',
    z.string().regex(/^[a-z_][a-z0-9_-]*\$?$/i, { error: 'must be a user name' }),
  ),
  HELPER_UIDS: setting(
    '1879048192-1879113727',
    'User ids (FIRST-LAST) from which each helper VM and each image conversion gets one of its own, with the group id of the same number; no account may use them; empty: they run as HELPER_USER',
    uidRange,
  ),
  HELPER_MEMORY: setting('512', 'Memory of the helper VM in MiB', positiveInt),
  HELPER_ACCEL: setting(
    'auto',
    'Helper VM accelerator: auto (probe once whether KVM really boots the helper), kvm or tcg',
    z.enum(['auto', 'kvm', 'tcg'], { error: 'must be auto, kvm or tcg' }),
  ),
  HELPER_DEBUG: setting(
    'no',
    'On a task failure keep the helper VM and give a root shell on its fourth serial port',
    yesNo,
  ),
  PROGRESS_MONITOR: setting(
    '',
    'Program that receives progress messages (JSON lines) on stdin, instance name as argv[1]; empty: messages go to the log prefixed [MONITOR]',
    optionalPath,
  ),
  IMAGE_DIR: setting('/var/lib/snf-image', 'Directory of local images (img_id local://NAME or NAME)', absolutePath),
  ANSWER_FILE_DIR: setting(
    '/etc/snf-image/answer-files',
    'Directory of the Windows answer files os_answer_file may name as file://PATH (a path or link leading out of it is refused; config_url documents may not name file:// answer files)',
    absolutePath,
  ),
  IMAGE_DEBUG: setting('no', 'Log debug detail of every step', yesNo),
  CLOUD_INIT_DEBUG: setting(
    'no',
    'Let cloud-init log at DEBUG level in deployed images and keep its seed files',
    yesNo,
  ),
  LOG_FORMAT: setting(
    'text',
    'Log format on stderr: text (readable lines) or json (one JSON object per line)',
    z.enum(['text', 'json'], { error: 'must be text or json' }),
  ),
  DHCP_TAGS: setting('auto dhcp nfdhcpd', 'Ganeti network tags that mean IPv4 DHCP', wordList),
  STATEFUL_DHCPV6_TAGS: setting('dhcpv6 stateful_dhcpv6', 'Ganeti network tags that mean stateful DHCPv6', wordList),
  STATELESS_DHCPV6_TAGS: setting(
    'nfdhcpd stateless_dhcpv6',
    'Ganeti network tags that mean SLAAC plus stateless DHCPv6',
    wordList,
  ),
  DEFAULT_NIC_CONFIG: setting(
    'dhcp',
    'Configuration of a lone NIC with neither an IP nor an IPv6 gateway (as upstream): "", dhcp, dhcpv6, slaac, slaac_dhcp, dhcp+dhcpv6, dhcp+slaac or dhcp+slaac_dhcp',
    z.enum(NIC_CONFIG_VALUES, { error: `must be one of ${NIC_CONFIG_VALUES.map((v) => `"${v}"`).join(', ')}` }),
  ),
  WINDOWS_TIMEZONE: setting(
    'GMT Standard Time',
    'Time zone of the built-in Windows answer file (Windows time zone name)',
    z.string().min(1, { error: 'must not be empty' }),
  ),
  VARIANTS_DIR: setting(
    '/etc/ganeti/snf-image/variants',
    'Directory of the variant files <variant>.conf',
    absolutePath,
  ),
  CONFIG_URL_TIMEOUT: setting('30', 'Time allowed to fetch a config_url document', duration),
  CONFIG_URL_MAX_SIZE: setting('1M', 'Largest config_url document accepted', sizeBytes),
  SOURCE_PRIORITIES: setting(
    '',
    'Image source priorities overriding the defaults (null=30 http=20 ftp=20 local=10), e.g. "local=40"',
    z
      .string()
      .regex(/^(\s*[a-z]+=\d+\s*)*$/, { error: 'must be name=number pairs separated by spaces' })
      .transform(
        (v) =>
          new Map(
            v
              .split(/\s+/)
              .filter(Boolean)
              .map((p) => {
                const [name, prio] = p.split('=');
                return [name as string, Number(prio)] as const;
              }),
          ),
      ),
  ),
  SOURCES_DISABLED: setting('', 'Image sources that must not be used (local, http, ftp, null)', wordList),
  HTTP_TIMEOUT: setting('30', 'Connect and idle timeout of image downloads', duration),
  DOWNLOAD_TIMEOUT: setting('4h', 'Total time one image download (http, ftp) may take, resumptions included', duration),
  DOWNLOAD_MIN_SPEED: setting(
    '64K',
    'Slowest average speed of an image download (bytes per second, measured over each HTTP_TIMEOUT spent waiting for the server); 0: no minimum',
    sizeBytes,
  ),
  HTTP_RETRIES: setting('5', 'How often an interrupted image download is resumed', wholeNumber),
  HTTPS_CA_FILE: setting(
    '',
    "PEM bundle of CA certificates trusted by https and ftps downloads (images, SHA256SUMS, config_url, os_answer_file) besides the system CA store and Node's bundled roots; empty: none",
    optionalPath,
  ),
  HTTPS_VERIFY: setting(
    'yes',
    "Verify the certificate of https and ftps servers; no accepts any certificate (as upstream's curl -k) and logs a warning",
    yesNo,
  ),
  CONVERT_TIMEOUT: setting(
    '1h',
    'Time qemu-img may take to convert a qcow2, vmdk, vdi or vhdx image (it runs unprivileged, under limits)',
    duration,
  ),
  IMAGE_TMP_DIR: setting(
    '/var/tmp',
    'Where remote images that need random access (qcow2, vmdk, vdi, vhdx) are downloaded before conversion',
    absolutePath,
  ),
  WIPE_DISK_TAIL: setting(
    'yes',
    'Zero the part of the disk after the image, so no previous data stays readable (skipped on fresh sparse files)',
    yesNo,
  ),
  IMAGE_CACHE: setting(
    'yes',
    'Keep a node-local cache of remote http(s) images: one download per image, later deployments revalidate it (ETag / Last-Modified)',
    yesNo,
  ),
  IMAGE_CACHE_DIR: setting(
    '/var/cache/snf-image/images',
    'Directory of the remote image cache (created 0700, files 0600)',
    absolutePath,
  ),
  IMAGE_CACHE_MAX_SIZE: setting(
    '20G',
    'Largest total size of the image cache; least recently used entries are evicted beyond it',
    sizeBytes,
  ),
  IMAGE_CACHE_VERIFY: setting('no', 'Check the sha256 of a cached image (not only its size) before every use', yesNo),
  QEMU: setting(
    'qemu-system-x86_64',
    'QEMU binary that runs the helper VM',
    z.string().min(1, { error: 'must not be empty' }),
  ),
} as const;

export type SettingKey = keyof typeof SETTINGS;
export type Settings = { readonly [K in SettingKey]: z.output<(typeof SETTINGS)[K]['schema']> };

export const SETTING_KEYS = Object.keys(SETTINGS) as SettingKey[];

export function isSettingKey(key: string): key is SettingKey {
  return Object.hasOwn(SETTINGS, key);
}
