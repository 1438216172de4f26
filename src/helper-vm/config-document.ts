/**
 * The deployment's parameters as the helper VM receives them: a typed, versioned JSON
 * document on the config floppy (not shell code). The host builds it; the helper validates
 * it with the same schema before using anything in it. Written with zod/mini: importing
 * classic zod costs the helper's PID 1 about 60 ms of CPU natively, over a second under
 * TCG; zod/mini about 3 ms.
 */
import * as z from 'zod/mini';
import { oneLine } from '../util/errors.ts';

export const CONFIG_DOCUMENT_VERSION = 1;

const nic = z.object({
  index: z.number().check(z.int(), z.nonnegative()),
  mac: z.string(),
  ip: z.optional(z.string()),
  uuid: z.optional(z.string()),
  name: z.optional(z.string()),
  mode: z.optional(z.string()),
  link: z.optional(z.string()),
  bridge: z.optional(z.string()),
  frontendType: z.optional(z.string()),
  network: z.object({
    name: z.optional(z.string()),
    uuid: z.optional(z.string()),
    tags: z.array(z.string()),
    subnet: z.optional(z.string()),
    gateway: z.optional(z.string()),
    subnet6: z.optional(z.string()),
    gateway6: z.optional(z.string()),
    macPrefix: z.optional(z.string()),
  }),
});

const personalityFile = z.object({
  path: z.string(),
  contents: z.string(),
  owner: z.optional(z.string()),
  group: z.optional(z.string()),
  mode: z.optional(z.number().check(z.int())),
});

const configDocumentSchema = z.object({
  version: z.literal(CONFIG_DOCUMENT_VERSION),
  /** 'create' runs the task table; 'rename' only the hostname task. */
  operation: z.enum(['create', 'rename']),
  hostname: z.string(),
  /** img_format (create): upstream's tasks see it as SNF_IMAGE_TYPE. */
  imageFormat: z.optional(z.string()),
  oldHostname: z.optional(z.string()),
  /** Image properties (img_properties overridden by inst_properties), upper-case names. */
  properties: z.record(z.string(), z.string()),
  /** Virtio serial numbers of the instance disks, in Ganeti's order (disk 0 first). */
  disks: z.array(z.object({ index: z.number().check(z.int(), z.nonnegative()), serial: z.string() })),
  nics: z.array(nic),
  network: z.object({
    dhcpTags: z.array(z.string()),
    statefulDhcpv6Tags: z.array(z.string()),
    statelessDhcpv6Tags: z.array(z.string()),
    defaultNicConfig: z.string(),
  }),
  secrets: z.object({
    password: z.optional(z.string()),
    passwordHash: z.optional(z.string()),
    authKeys: z.optional(z.string()),
    cloudUserdata: z.optional(z.string()),
    productKey: z.optional(z.string()),
  }),
  personality: z.array(personalityFile),
  /** Fresh SSH host keys made on the host, by type (rsa, ecdsa, ed25519). */
  hostKeys: z.record(z.string(), z.object({ privateKey: z.string(), publicKey: z.string() })),
  /** When the personality did not fit on the floppy: the virtio disk holding it. */
  personalityDisk: z.optional(z.object({ serial: z.string(), bytes: z.number().check(z.int(), z.positive()) })),
  windowsTimezone: z.string(),
  /** os_answer_file's content (base64), fetched by the host: replaces the image's answer file. */
  answerFile: z.optional(z.string()),
  cloudInitDebug: z.boolean(),
  debug: z.boolean(),
});

export type ConfigDocument = z.infer<typeof configDocumentSchema>;

export function parseConfigDocument(text: string): ConfigDocument {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new Error('config document is not JSON: the config floppy is damaged');
  }
  const version = typeof data === 'object' && data !== null ? (data as { version?: unknown }).version : undefined;
  // Not String(version): an object whose toString is not a function throws a TypeError.
  const shown =
    typeof version === 'object' && version !== null
      ? Array.isArray(version)
        ? 'an array'
        : 'an object'
      : String(version);
  if (version !== CONFIG_DOCUMENT_VERSION)
    throw new Error(
      oneLine(
        `config document version ${shown} is not ${CONFIG_DOCUMENT_VERSION}: the helper image does not match this snf-image (run snf-image-update-helper)`,
      ),
    );
  const result = z.safeParse(configDocumentSchema, data);
  if (!result.success)
    throw new Error(
      oneLine(
        `config document invalid: ${result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      ),
    );
  return result.data;
}
