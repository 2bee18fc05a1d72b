import { Box, Static, Text } from 'ink';
import type { JobState } from '../../jobs/index.ts';
import { bar, fit, iso, shortBytes, shortDuration, shortRate, shortRef } from '../format.ts';
import { liveRows, STATES, type JobRow, type LabSnapshot } from '../model.ts';

/** What the header says once workloads are loaded. */
export interface Serving {
  readonly version: string;
  /** Where the workloads came from, e.g. `acme/lab@nightly` or a folder. */
  readonly source: string;
  readonly reports: string;
  /** URLs servers should boot from: real interface addresses, never 0.0.0.0. */
  readonly bootUrls: readonly string[];
}

export interface ScreenProps {
  /** Undefined while the workloads load. */
  readonly serving: Serving | undefined;
  /** What is loading, for the spinner line. */
  readonly loading: string;
  readonly snapshot: LabSnapshot;
  readonly now: number;
  readonly width: number;
  readonly height: number;
  /** Moves the spinner on. */
  readonly frame: number;
  /** Shown on the last line, e.g. "stopping…". */
  readonly status?: string;
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

export const SYMBOL: Readonly<Record<JobState, string>> = {
  unassigned: '·',
  assigned: '→',
  downloading: '↓',
  booting: '▶',
  reported: '✉',
  finished: '✔',
  failed: '✘',
};

const COLOR: Readonly<Record<JobState, string | undefined>> = {
  unassigned: 'gray',
  assigned: 'cyan',
  downloading: 'blue',
  booting: 'yellow',
  reported: 'magenta',
  finished: 'green',
  failed: 'red',
};

const MESSAGE_LINES = 3;

/** Column widths for a terminal `width` wide; narrow terminals drop last-seen and size first. */
function columns(width: number) {
  const wide = width >= 80;
  const fixed = { symbol: 1, server: 15, seen: wide ? 5 : 0, size: wide ? 6 : 0, progress: 19, time: 8, issue: 8 };
  const gaps = Object.values(fixed).filter((w) => w > 0).length;
  const name = Math.max(8, width - 1 - gaps - Object.values(fixed).reduce((a, b) => a + b, 0));
  return { ...fixed, name };
}

/**
 * The progress column as parts: each part's text is drawn (and measured by
 * ink) on its own, so that what changes every frame (bar, percent, rate)
 * takes few distinct values. ink keeps the size of every distinct text it
 * ever measured, for good: a whole row that changed with every frame (its
 * clocks, its progress) was a new entry each time, a leak of about a row's
 * text per visible row per second for as long as the TUI ran.
 */
function progress(row: JobRow, width: number): readonly string[] {
  if (row.state === 'failed') return [fit(row.reason ?? 'failed', width)];
  if (row.state === 'booting') return [fit('running', width)];
  if (row.state === 'reported') return [fit('report in, filing', width)];
  if (row.state === 'assigned') return [fit('waiting for GET', width)];
  if (row.state !== 'downloading') return [fit('', width)];
  const fraction = row.size > 0 ? row.bytes / row.size : 1;
  const barWidth = 6;
  const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
  // Bar, space, percent, space: the rate has what is left.
  return [bar(fraction, barWidth), ` ${percent} `, fit(row.rate === null ? '' : shortRate(row.rate), width - barWidth - 6)];
}

function issueOf(row: JobRow): string {
  if (row.reports.length === 0) return row.state === 'failed' || row.state === 'reported' ? 'filing…' : '';
  const last = shortRef(row.reports[row.reports.length - 1]!);
  return row.reports.length > 1 ? `${last}+${row.reports.length - 1}` : last;
}

/** A row of the live table as the texts it is drawn in: its columns, a space between two, each part its own text (see `progress`). */
export function rowParts(row: JobRow, now: number, width: number): readonly string[] {
  const c = columns(width);
  const columnsOfRow: ReadonlyArray<readonly string[] | undefined> = [
    [fit(SYMBOL[row.state], c.symbol)],
    [fit(row.name, c.name)],
    [fit(row.ip ?? '-', c.server)],
    c.seen > 0 ? [fit(row.lastSeen === null ? '' : shortDuration(now - row.lastSeen), c.seen, 'right')] : undefined,
    c.size > 0 ? [fit(shortBytes(row.size), c.size, 'right')] : undefined,
    progress(row, c.progress),
    [fit(shortDuration(now - row.since), c.time, 'right')],
    [fit(issueOf(row), c.issue)],
  ];
  return columnsOfRow.filter((parts) => parts !== undefined).flatMap((parts, column) => parts.map((part, i) => (column > 0 && i === 0 ? ` ${part}` : part)));
}

function Row({ row, now, width }: { readonly row: JobRow; readonly now: number; readonly width: number }) {
  return (
    <Box width={width} flexShrink={0}>
      {rowParts(row, now, width).map((part, i) => (
        <Text key={i} color={COLOR[row.state]} wrap="truncate">
          {part}
        </Text>
      ))}
    </Box>
  );
}

function HeaderRow({ width }: { readonly width: number }) {
  const c = columns(width);
  const cells = [
    fit('', c.symbol),
    fit('JOB', c.name),
    fit('SERVER', c.server),
    c.seen > 0 ? fit('SEEN', c.seen, 'right') : undefined,
    c.size > 0 ? fit('SIZE', c.size, 'right') : undefined,
    fit('PROGRESS', c.progress),
    fit('IN STATE', c.time, 'right'),
    fit('ISSUE', c.issue),
  ].filter((cell) => cell !== undefined);
  return (
    <Text bold wrap="truncate">
      {cells.join(' ')}
    </Text>
  );
}

/** A job that is over, printed once above the live table: when, what, where, how, and where it was filed. */
export function finalLine(row: JobRow): string {
  const result = row.state === 'failed' ? `failed: ${row.reason ?? 'unknown'}` : 'finished';
  const refs = row.reports.map(shortRef).join(', ') || '-';
  return `${iso(row.since).slice(11, 19)} ${SYMBOL[row.state]} ${row.name}  ${row.ip ?? '-'}  ${result}  ${refs}`;
}

/** Counts by state: the busy states only when something is in them, finished and failed always. */
function Counts({ snapshot }: { readonly snapshot: LabSnapshot }) {
  const shown = STATES.filter((state) => snapshot.counts[state] > 0 || state === 'finished' || state === 'failed');
  return (
    <Text wrap="truncate">
      {shown.map((state) => (
        <Text key={state} color={snapshot.counts[state] > 0 ? COLOR[state] : 'gray'}>
          {`${snapshot.counts[state]} ${state}  `}
        </Text>
      ))}
      <Text color="gray">{`${snapshot.poweroffs} powered off`}</Text>
    </Text>
  );
}

/** The whole screen: pure, from props. Lines are counted so the frame never outgrows the terminal. */
export function Screen(props: ScreenProps) {
  const { serving, snapshot, now, width, height } = props;
  const finals = snapshot.finals;
  const messages = snapshot.messages.slice(-MESSAGE_LINES);
  const footer = (
    <>
      {messages.map((line, i) => (
        <Text key={i} color="gray" wrap="truncate">
          {line}
        </Text>
      ))}
      <Text color="gray" wrap="truncate">
        {props.status ?? 'q quit'}
      </Text>
    </>
  );
  if (!serving) {
    return (
      <Box flexDirection="column" width={width}>
        <Text wrap="truncate">
          <Text color="cyan">{SPINNER[props.frame % SPINNER.length]}</Text> {props.loading}
        </Text>
        {footer}
      </Box>
    );
  }
  const urls = serving.bootUrls.length > 3 ? [...serving.bootUrls.slice(0, 3), `(+${serving.bootUrls.length - 3} more)`] : serving.bootUrls;
  // Header 2, table header 1, counts 1, messages, status 1, and one spare line so ink never scrolls.
  const room = Math.max(1, height - 2 - 1 - 1 - messages.length - 1 - 1);
  const live = liveRows(snapshot.rows, room);
  return (
    <>
      <Static items={finals as JobRow[]}>
        {(row) => (
          <Text key={row.id} color={COLOR[row.state]} wrap="truncate">
            {finalLine(row)}
          </Text>
        )}
      </Static>
      <Box flexDirection="column" width={width}>
        <Text wrap="truncate">
          <Text bold>dispatch {serving.version}</Text>
          {` · ${snapshot.rows.length} workload(s) from ${serving.source} · reports → ${serving.reports}`}
        </Text>
        <Text wrap="truncate">
          {'servers boot from '}
          <Text color="cyan">{urls.join('  ')}</Text>
        </Text>
        <HeaderRow width={width} />
        {live.shown.map((row) => (
          <Row key={row.id} row={row} now={now} width={width} />
        ))}
        {live.shown.length === 0 ? (
          <Text color="gray" wrap="truncate">
            {snapshot.rows.length === 0 ? 'no workloads to serve' : 'no job is waiting or running: every job is over'}
          </Text>
        ) : null}
        {live.hidden > 0 ? (
          <Text color="gray" wrap="truncate">
            {`… ${live.hidden} more not shown (${live.waiting} waiting)`}
          </Text>
        ) : null}
        <Counts snapshot={snapshot} />
        {footer}
      </Box>
    </>
  );
}
