export { eventRecord, formatEvent, jsonLog, logQueue, plainLog, type EventRecord } from './log.ts';
export { LabModel, liveRows, type JobRow, type LabSnapshot } from './model.ts';
export { summaryRow, summaryTable, type SummaryRow } from './summary.ts';
export { FdOutput, streamOutput, type Output } from './output.ts';
