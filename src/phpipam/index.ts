/** The phpIPAM database backup and restore: config section, mysql2 preflight/facts, dump command and stream, restore core. */
export * from './config';
export * from './types';
export * from './failures';
export { connectPhpipam, preflight, tableFacts, flavourOf, numericVersion } from './server';
export * from './dump-command';
export { DumpTextWatcher, hasDumpTrailer, parseBinlogPosition } from './dump-text';
export { describeExit, dumpEnvironment, DumpToolMissingError, readDumpTool, runDump, type DumpRun, type DumpRunOptions } from './dump';
export { clientOptionFileText, escapeOptionValue, writeClientOptionFile } from './option-file';
export * from './restore';
