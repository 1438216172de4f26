/** The OS families a deployment can be for (the OSFAMILY property): the one list of them. */
export const OS_FAMILIES = ['linux', 'windows', 'windows-legacy', 'freebsd', 'netbsd', 'openbsd'] as const;
export type OsFamily = (typeof OS_FAMILIES)[number];
