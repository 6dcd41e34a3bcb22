import type { ProgressEvent } from './events.js';
import type { ProgressOutput, ProgressRenderer } from './output.js';
import { PlainRenderer } from './plain.js';
import { RawJsonRenderer } from './rawjson.js';
import { TtyRenderer, type TtyRendererOptions } from './tty.js';

/** The `--progress` modes, as buildx names them. */
export type ProgressMode = 'auto' | 'plain' | 'tty' | 'rawjson';

/** Makes the renderer for `mode`; `auto` picks `tty` when `out.isTTY` is true, else `plain`. */
export function createRenderer(mode: ProgressMode, out: ProgressOutput, ttyOptions?: TtyRendererOptions): ProgressRenderer {
  switch (mode) {
    case 'auto':
      return out.isTTY === true ? new TtyRenderer(out, ttyOptions) : new PlainRenderer(out);
    case 'tty':
      return new TtyRenderer(out, ttyOptions);
    case 'plain':
      return new PlainRenderer(out);
    case 'rawjson':
      return new RawJsonRenderer(out);
    default: {
      const never: never = mode;
      return never;
    }
  }
}

/** Renders every event of `events` until it ends, then flushes the renderer. */
export async function renderProgress(events: AsyncIterable<ProgressEvent>, renderer: ProgressRenderer): Promise<void> {
  try {
    for await (const ev of events) renderer.handle(ev);
  } finally {
    renderer.finish();
  }
}
