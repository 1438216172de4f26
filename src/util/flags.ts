/** Image property flags: yes/true/on/1/set mean yes, as upstream snf-image reads them. */
export function isYes(value: string | undefined): boolean {
  return ['yes', 'true', 'on', '1', 'set'].includes((value ?? '').trim().toLowerCase());
}
