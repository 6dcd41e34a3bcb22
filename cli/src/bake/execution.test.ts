import { describe, expect, test } from 'vitest';
import { ProgressStream } from '@kiln/solver';
import { emitTargetResults, ExportBarrier, parseExecution, targetsFailedError, type TargetStatus } from './execution.js';
import { BakeProgress } from './progress.js';

describe('--execution', () => {
  test('fail-fast by default; the three modes; anything else is KLN0854 naming the option', () => {
    expect(parseExecution(undefined)).toBe('fail-fast');
    expect(parseExecution('defer-output')).toBe('defer-output');
    expect(parseExecution(' defer-error ')).toBe('defer-error');
    expect(() => parseExecution('parallel')).toThrow(expect.objectContaining({ code: 'KLN0854', message: 'invalid --execution "parallel"', hint: 'use fail-fast, defer-output, defer-error' }));
  });
});

describe('ExportBarrier (defer-output)', () => {
  test('opens only once every target arrived', async () => {
    const b = new ExportBarrier(['a', 'b']);
    const ac = new AbortController();
    let open = false;
    const waiting = b.wait(ac.signal).then(() => (open = true));
    b.arrive('a');
    b.arrive('a');
    await new Promise((r) => setTimeout(r, 5));
    expect(open).toBe(false);
    b.arrive('b');
    await waiting;
    expect(open).toBe(true);
    // A late waiter passes at once.
    await b.wait(ac.signal);
  });

  test('a target that ends without arriving breaks it: the waiters fail, and count as held there', async () => {
    const b = new ExportBarrier(['a', 'b', 'c']);
    b.arrive('a');
    const waiting = b.wait(new AbortController().signal);
    b.break('b');
    await expect(waiting).rejects.toMatchObject({ code: 'KLN0857', message: expect.stringContaining('target "b" did not succeed') });
    expect(b.heldAfterBreak('a')).toBe(true);
    expect(b.heldAfterBreak('c')).toBe(false);
    // A target that already arrived cannot break it afterwards.
    const after = new ExportBarrier(['x', 'y']);
    after.arrive('x');
    after.break('x');
    after.arrive('y');
    await after.wait(new AbortController().signal);
    expect(after.heldAfterBreak('x')).toBe(false);
  });

  test('a cancelled waiter stops waiting with its signal\'s reason', async () => {
    const b = new ExportBarrier(['a', 'b']);
    const ac = new AbortController();
    const waiting = b.wait(ac.signal);
    ac.abort(new Error('stop'));
    await expect(waiting).rejects.toThrow('stop');
  });
});

describe('target results', () => {
  const results = new Map<string, TargetStatus>([
    ['slow', 'aborted'],
    ['bad', 'failed'],
    ['app', 'not started'],
    ['good', 'succeeded'],
  ]);

  test('one [internal] target results step with a NAME: STATUS line per target, sorted', () => {
    const sink = new ProgressStream();
    emitTargetResults(sink, results, 1000);
    const events = sink.events();
    expect(events[0]).toMatchObject({ kind: 'vertex.started', name: '[internal] target results' });
    expect(events.filter((e) => e.kind === 'status').map((e) => (e.kind === 'status' ? e.id : ''))).toEqual(['app: not started', 'bad: failed', 'good: succeeded', 'slow: aborted']);
    expect(events.at(-1)).toMatchObject({ kind: 'vertex.done' });
  });

  test('the closing error names the failed targets and counts the cancelled and unstarted ones', () => {
    const ff = targetsFailedError(results, 'fail-fast');
    expect(ff.code).toBe('KLN0857');
    expect(ff.message).toBe('1 target failed: bad; 1 cancelled: slow; 1 not started: app (--execution fail-fast)');
    expect(ff.hint).toContain('--execution defer-error');
    const de = targetsFailedError(new Map<string, TargetStatus>([['a', 'failed'], ['b', 'failed'], ['c', 'succeeded']]), 'defer-error');
    expect(de.message).toBe('2 targets failed: a, b (--execution defer-error)');
    expect(de.hint).toBeUndefined();
  });
});

describe('BakeProgress: a step cancelled for the target that leaves it', () => {
  const V = `sha256:${'a'.repeat(64)}`;
  const run = (events: (p: BakeProgress) => void): string[] => {
    const out = new ProgressStream();
    const p = new BakeProgress(out);
    events(p);
    p.cancelOpen(9);
    out.close();
    return out.events().map((e) => `${e.kind}${e.kind === 'vertex.error' ? `:${e.error}` : ''}@${e.time}`);
  };
  const started = { kind: 'vertex.started', vertex: V, name: 'RUN x', time: 1 } as const;
  const cancel = (time: number) => ({ kind: 'vertex.error', vertex: V, error: 'cancelled', time }) as const;

  test('shows CANCELED when the last target in it leaves, not at the end of the bake', () => {
    expect(
      run((p) => {
        const [a, b] = [p.forTarget('a'), p.forTarget('b')];
        a.emit(started);
        b.emit(started);
        a.emit(cancel(2));
        b.emit(cancel(3));
      }),
    ).toEqual(['vertex.started@1', 'vertex.error:cancelled@3']);
  });

  test('not while another target still runs it: that one finishes it (DONE only)', () => {
    expect(
      run((p) => {
        const [a, b] = [p.forTarget('a'), p.forTarget('b')];
        a.emit(started);
        b.emit(started);
        a.emit(cancel(2));
        const done = { kind: 'vertex.done', vertex: V, time: 4 } as const;
        a.emit(done);
        b.emit(done);
      }),
    ).toEqual(['vertex.started@1', 'vertex.done@4']);
  });

  test('a target that saw the step end earlier holds back nobody when it runs again', () => {
    expect(
      run((p) => {
        const [a, b] = [p.forTarget('a'), p.forTarget('b')];
        a.emit(started);
        b.emit(started);
        a.emit({ kind: 'vertex.done', vertex: V, time: 2 });
        const again = { ...started, time: 3 };
        a.emit(again);
        a.emit(cancel(4));
      }),
    ).toEqual(['vertex.started@1', 'vertex.done@2', 'vertex.started@3', 'vertex.error:cancelled@4']);
  });
});
