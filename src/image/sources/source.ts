/**
 * An image source back-end: probe (does it handle this img_id?), then open (size, stream).
 * Adding a back-end means adding one file and listing it in registry.ts. What the deployment
 * does differently for a back-end follows from what it declares (cacheable, verifiesDigest,
 * nothingToCopy), never from its name.
 */
import type { ExpectedDigest } from '../checksum.ts';
import type { TlsTrust } from '../../util/tls-trust.ts';
import type { ByteStream } from '../stream-util.ts';

export interface SourceSettings {
  imageDir: string;
  /** Connect and idle timeout; also the window of the minimum speed. */
  httpTimeoutSeconds: number;
  httpRetries: number;
  /** Total time of one download, resumptions included (DOWNLOAD_TIMEOUT). */
  downloadTimeoutSeconds: number;
  /** Slowest average speed accepted, bytes/s (DOWNLOAD_MIN_SPEED); 0: none. */
  downloadMinSpeed: number;
  /** Most bytes one download may bring (see downloadByteLimit). */
  downloadMaxBytes: number;
  /** Certificates https and ftps servers may present (HTTPS_CA_FILE, HTTPS_VERIFY). */
  tls: TlsTrust;
}

export interface OpenedImage {
  /** Size in bytes of what stream() yields, when known before reading. */
  size: number | undefined;
  /** For logs and errors (never credentials). */
  description: string;
  /**
   * The image is this local file, which tools such as qemu-img read in place: a name of the
   * source's open file (/proc/<pid>/fd/<n>, never the image's name again) or a private file
   * (a cache entry, a temporary download).
   */
  localPath?: string;
  /** img_id=null: there is no image; the disk is customized as it is. */
  nothingToCopy?: boolean;
  /** From a source that verifiesDigest: the checksum the deployment still has to verify (undefined: done). */
  pendingDigest?: ExpectedDigest | undefined;
  /** The image bytes, from the start; can be called once. */
  stream(): ByteStream;
  close(): Promise<void>;
}

interface OpenOptions {
  /** The checksum expected, given to a source that verifiesDigest. */
  digest?: ExpectedDigest | undefined;
  /** The consumer needs a file (qemu-img reads virtual disks in place). */
  needFile?: boolean;
}

export interface ImageSource {
  readonly name: string;
  /** Higher wins when several back-ends accept an img_id (configurable: SOURCE_PRIORITIES). */
  readonly defaultPriority: number;
  /** Can be served through the node-local image cache: the registry wraps it when IMAGE_CACHE is on. */
  readonly cacheable?: boolean;
  /**
   * open() takes the expected checksum (options.digest, computed before opening) and verifies
   * it itself or hands it back as OpenedImage.pendingDigest.
   */
  readonly verifiesDigest?: boolean;
  probe(imgId: string): boolean;
  open(imgId: string, settings: SourceSettings, options?: OpenOptions): Promise<OpenedImage>;
}
