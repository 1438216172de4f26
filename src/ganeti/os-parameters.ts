/**
 * The OS parameters snf-image accepts: one table drives parameters.list, verify, the
 * config_url document schema, redaction and the docs.
 */

type OsParameterKind =
  | 'text'
  | 'uri'
  | 'format'
  | 'json-object'
  | 'json-array'
  | 'base64'
  | 'ssh-keys'
  | 'password'
  | 'password-hash'
  | 'product-key';

export interface OsParameterSpec {
  /** Name as given to gnt-instance -O (lower case). */
  readonly name: OsParameterName;
  /** One line for parameters.list and gnt-os info (no newline, never empty). */
  readonly description: string;
  readonly kind: OsParameterKind;
  /** Secret values are wrapped in Secret and never logged. */
  readonly secret: boolean;
  /** Only meaningful for these OS families (empty: all). */
  readonly families?: readonly ('unix' | 'windows')[];
}

export const OS_PARAMETER_NAMES = [
  'img_id',
  'img_format',
  'img_passwd',
  'img_passwd_hash',
  'img_properties',
  'inst_properties',
  'img_personality',
  'auth_keys',
  'config_url',
  'os_product_key',
  'os_answer_file',
  'cloud_userdata',
] as const;

export type OsParameterName = (typeof OS_PARAMETER_NAMES)[number];

export const OS_PARAMETERS: readonly OsParameterSpec[] = [
  {
    name: 'img_id',
    kind: 'uri',
    secret: false,
    description:
      'Image to deploy: local://NAME, NAME (inside IMAGE_DIR), http(s)://URL, ftp(s)://URL or null (required unless config_url)',
  },
  {
    name: 'img_format',
    kind: 'format',
    secret: false,
    description:
      'Image format: diskdump, extdump, ntfsdump, qcow2, vmdk, vdi or vhdx; diskdump may be gzip/xz/zstd/bzip2 compressed (required unless config_url)',
  },
  {
    name: 'img_passwd',
    kind: 'password',
    secret: true,
    description: 'Password to set for the image USERS (pass it with --os-parameters-secret)',
  },
  {
    name: 'img_passwd_hash',
    kind: 'password-hash',
    secret: true,
    description: 'Already hashed (crypt(3)) password to set for the image USERS; Unix images only; excludes img_passwd',
  },
  {
    name: 'img_properties',
    kind: 'json-object',
    secret: false,
    description: 'JSON object of image properties (OSFAMILY, ROOT_PARTITION, USERS, SWAP, EXCLUDE_TASK_<Task>, ...)',
  },
  {
    name: 'inst_properties',
    kind: 'json-object',
    secret: false,
    description: 'JSON object of image properties for this instance only; overrides img_properties',
  },
  {
    name: 'img_personality',
    kind: 'json-array',
    secret: false,
    description:
      'JSON array of files to inject: [{"path": "/abs/path", "contents": "<base64>", "owner": "root", "group": "root", "mode": 288}]',
  },
  {
    name: 'auth_keys',
    kind: 'ssh-keys',
    secret: true,
    families: ['unix'],
    description: 'OpenSSH authorized_keys lines appended for each of the image USERS; Unix images only',
  },
  {
    name: 'config_url',
    kind: 'uri',
    secret: false,
    description:
      'http(s) URL of a JSON document whose keys (any of these parameters) override the parameters given here',
  },
  {
    name: 'os_product_key',
    kind: 'product-key',
    secret: true,
    families: ['windows'],
    description: 'Windows product key XXXXX-XXXXX-XXXXX-XXXXX-XXXXX; Windows images only',
  },
  {
    name: 'os_answer_file',
    kind: 'uri',
    secret: false,
    families: ['windows'],
    description:
      'http(s)/ftp(s)/file URL of an Unattend.xml or sysprep.inf to use instead of the image one; Windows images only',
  },
  {
    name: 'cloud_userdata',
    kind: 'base64',
    secret: true,
    description: 'Base64-encoded cloud-init user-data, used when the image property CLOUD_INIT is set',
  },
];

export const SECRET_PARAMETER_NAMES: readonly OsParameterName[] = OS_PARAMETERS.filter((p) => p.secret).map(
  (p) => p.name,
);

export function isOsParameterName(name: string): name is OsParameterName {
  return (OS_PARAMETER_NAMES as readonly string[]).includes(name);
}

/** Ganeti's environment variable for a parameter: upper case, '-' becomes '_'. */
export function osParameterEnvName(name: string): string {
  return `OSP_${name.toUpperCase().replaceAll('-', '_')}`;
}

/** The text of parameters.list: one `name description` line per parameter, no blank line. */
export function renderParametersList(): string {
  return `${OS_PARAMETERS.map((p) => `${p.name} ${p.description}`).join('\n')}\n`;
}
