import type { Logger } from '../vm/index.ts';

/**
 * What a peer has started, as a stack of undo steps: `defer` after each part starts, `run` undoes
 * them in reverse, the same whether the peer stops normally or its start failed halfway. A step
 * that fails is logged and the rest still run, so one stuck part leaves no others behind.
 */
export class Teardown {
  readonly #steps: { name: string; undo: () => unknown }[] = [];
  readonly #logger: Logger;
  #running: Promise<void> | undefined;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /** Registers the undo of a part that just started. */
  defer(name: string, undo: () => unknown): void {
    if (this.#running) throw new Error(`${name} started while the peer is stopping`);
    this.#steps.push({ name, undo });
  }

  /** Runs every undo step in reverse order, once; later calls wait for the first. */
  run(): Promise<void> {
    this.#running ??= (async () => {
      for (const { name, undo } of this.#steps.reverse()) {
        try {
          await undo();
        } catch (error) {
          this.#logger.error('stopping a part failed', { part: name, error: (error as Error).message });
        }
      }
    })();
    return this.#running;
  }
}
