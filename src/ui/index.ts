export { formatEvent, logQueue, plainLog } from './log.ts';
