/** The snf-image version (kept equal to package.json's by scripts/bundle.ts's check). */
export const VERSION = '0.1.0';
