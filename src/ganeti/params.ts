/**
 * OS parameters: raw OSP_* strings (plus configuration presets and a config_url document)
 * into typed values, with every check that needs no image. Secret parameters become
 * Secret objects the moment they are read.
 */
import { IMAGE_FORMAT_NAMES } from '../image/formats.ts';
import { ImageIdError, parseImageId } from '../image/image-id.ts';
import { validateJson } from '../schemas/validate.ts';
import { oneLine } from '../util/errors.ts';
import { Secret } from '../util/secret.ts';
import { OS_PARAMETERS, type OsParameterName } from './os-parameters.ts';

type Properties = Readonly<Record<string, string>>;

interface PersonalityFile {
  path: string;
  /** base64 */
  contents: string;
  owner?: string;
  group?: string;
  mode?: number;
}

export interface OsParams {
  imgId: string | undefined;
  imgFormat: string | undefined;
  imgPasswd: Secret | undefined;
  imgPasswdHash: Secret | undefined;
  imgProperties: Properties;
  instProperties: Properties;
  imgPersonality: PersonalityFile[];
  authKeys: Secret | undefined;
  configUrl: string | undefined;
  osProductKey: Secret | undefined;
  osAnswerFile: string | undefined;
  cloudUserdata: Secret | undefined;
}

/** Parameter values as text, by name; secrets already wrapped. */
export type RawParams = ReadonlyMap<string, string | Secret>;

export interface ParamCheckOptions {
  imageDir: string;
  /** img_id and img_format must be present (false when a config_url may still supply them). */
  requireImage: boolean;
}

const BASE64 = /^[A-Za-z0-9+/\r\n]*={0,2}\s*$/;
const CRYPT_HASH = /^(?:\$(?:1|2[abxy]?|5|6|y|7|gy|sha1|md5)\$[^\s:]+|[A-Za-z0-9./]{13})$/;
const PRODUCT_KEY = /^([A-Za-z0-9]{5}-){4}[A-Za-z0-9]{5}$/;
const ANSWER_FILE_URL = /^(https?|ftps?|file):\/\/.+/;
const SSH_KEY_TYPE =
  /(?:^|\s)(ssh-(?:rsa|dss|ed25519)|ecdsa-sha2-nistp(?:256|384|521)|sk-(?:ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)\s+([A-Za-z0-9+/]+={0,3})(?:\s|$)/;

/** Wraps the secret parameters of a name -> text map. */
export function wrapSecrets(values: ReadonlyMap<string, string>): Map<string, string | Secret> {
  const out = new Map<string, string | Secret>();
  for (const [name, value] of values) {
    const spec = OS_PARAMETERS.find((p) => p.name === name);
    out.set(name, spec?.secret ? new Secret(value) : value);
  }
  return out;
}

function text(raw: RawParams, name: OsParameterName): string | undefined {
  const v = raw.get(name);
  return v === undefined ? undefined : v instanceof Secret ? v.reveal() : v;
}

function parseJsonParam(name: OsParameterName, value: string, problems: string[]): unknown {
  try {
    return JSON.parse(value);
  } catch (error) {
    problems.push(
      `${name}: is not valid JSON (${error instanceof Error ? error.message.replace(/\s+/g, ' ') : 'parse error'})`,
    );
    return undefined;
  }
}

/** Upper-cases property names and turns values into strings, as upstream does. */
function normalizeProperties(data: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(data)) {
    out[key.toUpperCase()] = typeof value === 'boolean' ? (value ? 'yes' : 'no') : String(value);
  }
  return out;
}

function parseProperties(
  name: 'img_properties' | 'inst_properties',
  value: string | undefined,
  problems: string[],
): Properties {
  if (value === undefined || value.trim() === '') return {};
  const data = parseJsonParam(name, value, problems);
  if (data === undefined) return {};
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    problems.push(`${name}: must be a JSON object`);
    return {};
  }
  const upper: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(data))
    upper[key.toUpperCase()] = typeof v === 'string' && key.toUpperCase() === 'OSFAMILY' ? v.toLowerCase() : v;
  const errors = validateJson('img-properties', upper, name);
  problems.push(...errors);
  return errors.length > 0 ? {} : normalizeProperties(upper);
}

function parsePersonality(value: string | undefined, problems: string[]): PersonalityFile[] {
  if (value === undefined || value.trim() === '') return [];
  const data = parseJsonParam('img_personality', value, problems);
  if (data === undefined) return [];
  const errors = validateJson('img-personality', data, 'img_personality');
  problems.push(...errors);
  return errors.length > 0 ? [] : (data as PersonalityFile[]);
}

function checkAuthKeys(value: string, problems: string[]): void {
  const lines = value
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  if (lines.length === 0) problems.push('auth_keys: contains no key');
  lines.forEach((line, i) => {
    if (!SSH_KEY_TYPE.test(line))
      problems.push(`auth_keys: line ${i + 1} is not an OpenSSH public key (want "[options] type base64 [comment]")`);
  });
}

/**
 * Turns the raw parameter map into typed parameters. Returns the problems found (one line
 * each, naming the parameter and the rule; secret values never appear in them).
 */
export function parseOsParams(raw: RawParams, options: ParamCheckOptions): { params: OsParams; problems: string[] } {
  const problems: string[] = [];
  const get = (name: OsParameterName) => text(raw, name);
  const secret = (name: OsParameterName): Secret | undefined => {
    const v = raw.get(name);
    return v === undefined ? undefined : v instanceof Secret ? v : new Secret(v);
  };
  /** Optional parameters given empty (-O name=) count as not given. */
  const optionalSecret = (name: OsParameterName): Secret | undefined => {
    const v = secret(name);
    return v && v.length > 0 ? v : undefined;
  };

  const imgId = get('img_id');
  const imgFormat = get('img_format');
  if (imgId === undefined || imgId.trim() === '') {
    if (options.requireImage) problems.push(`img_id: is required${imgId === '' ? ' (it is set but empty)' : ''}`);
  } else {
    try {
      parseImageId(imgId, options.imageDir);
    } catch (error) {
      if (error instanceof ImageIdError) problems.push(`img_id: ${error.message}`);
      else throw error;
    }
  }
  if (imgFormat === undefined || imgFormat.trim() === '') {
    if (options.requireImage)
      problems.push(
        `img_format: is required${imgFormat === '' ? ' (it is set but empty)' : ''} (one of ${IMAGE_FORMAT_NAMES.join(', ')})`,
      );
  } else if (!IMAGE_FORMAT_NAMES.includes(imgFormat)) {
    problems.push(`img_format: '${imgFormat}' is not a supported format (one of ${IMAGE_FORMAT_NAMES.join(', ')})`);
  }

  const imgPasswd = secret('img_passwd');
  const imgPasswdHash = secret('img_passwd_hash');
  if (imgPasswd && imgPasswd.length === 0)
    problems.push('img_passwd: is set but empty (omit it to keep the image passwords)');
  if (imgPasswdHash && imgPasswdHash.length === 0) problems.push('img_passwd_hash: is set but empty');
  if (imgPasswd && imgPasswdHash) problems.push('img_passwd, img_passwd_hash: give only one of them');
  if (imgPasswdHash && imgPasswdHash.length > 0 && !CRYPT_HASH.test(imgPasswdHash.reveal()))
    problems.push('img_passwd_hash: is not a crypt(3) hash (want $id$salt$hash, e.g. from mkpasswd)');

  const imgProperties = parseProperties('img_properties', get('img_properties'), problems);
  const instProperties = parseProperties('inst_properties', get('inst_properties'), problems);
  const imgPersonality = parsePersonality(get('img_personality'), problems);

  const authKeys = optionalSecret('auth_keys');
  if (authKeys) checkAuthKeys(authKeys.reveal(), problems);

  const configUrl = get('config_url');
  if (configUrl !== undefined && configUrl !== '') {
    let ok = false;
    try {
      ok = ['http:', 'https:'].includes(new URL(configUrl).protocol);
    } catch {
      ok = false;
    }
    if (!ok) problems.push('config_url: must be an http:// or https:// URL');
  }

  const osProductKey = optionalSecret('os_product_key');
  if (osProductKey && !PRODUCT_KEY.test(osProductKey.reveal()))
    problems.push('os_product_key: must look like XXXXX-XXXXX-XXXXX-XXXXX-XXXXX');

  const osAnswerFile = get('os_answer_file');
  if (osAnswerFile !== undefined && osAnswerFile !== '' && !ANSWER_FILE_URL.test(osAnswerFile))
    problems.push('os_answer_file: must be an http(s)://, ftp(s):// or file:// URL');

  const cloudUserdata = optionalSecret('cloud_userdata');
  if (cloudUserdata && !BASE64.test(cloudUserdata.reveal())) problems.push('cloud_userdata: must be base64');

  const family = instProperties.OSFAMILY ?? imgProperties.OSFAMILY;
  if (family?.startsWith('windows')) {
    if (imgPasswdHash)
      problems.push('img_passwd_hash: cannot be used with Windows images (OSFAMILY windows); use img_passwd');
    if (authKeys) problems.push('auth_keys: cannot be used with Windows images (OSFAMILY windows)');
  } else if (family !== undefined && osProductKey) {
    problems.push(`os_product_key: only applies to Windows images (OSFAMILY is ${family})`);
  }

  return {
    params: {
      imgId: imgId?.trim() || undefined,
      imgFormat: imgFormat?.trim() || undefined,
      imgPasswd,
      imgPasswdHash,
      imgProperties,
      instProperties,
      imgPersonality,
      authKeys,
      configUrl: configUrl || undefined,
      osProductKey,
      osAnswerFile: osAnswerFile || undefined,
      cloudUserdata,
    },
    // A value echoed in a problem may hold a line break: verify prints one problem per line.
    problems: problems.map(oneLine),
  };
}
