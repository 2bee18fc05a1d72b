/** Every module logs through this, injected: `(subsystem, message)`. Never pass it a token. */
export type Log = (subsystem: string, message: string) => void;

export const silentLog: Log = () => undefined;
