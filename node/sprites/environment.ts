import type { ControlClient } from '../../vm/index.ts';

/** What callers of a sprite's sprite-init use: requests and streaming requests. */
export type SpriteControl = Pick<ControlClient, 'call' | 'open'>;

type Request = { op: string; [key: string]: unknown };

/**
 * A sprite's control client that gives its environment (set at create) to what the API starts in
 * it: every exec (commands, TTY sessions, the console) and every service put, under their own
 * variables, which win. Other requests pass unchanged.
 */
export function withEnvironment(control: ControlClient, environment: Readonly<Record<string, string>>): SpriteControl {
  if (Object.keys(environment).length === 0) return control;
  const merge = (request: Request): Request => {
    if (request.op === 'exec') return { ...request, env: { ...environment, ...asEnv(request.env) } };
    if (request.op === 'services.put' && typeof request.spec === 'object' && request.spec !== null) {
      const spec = request.spec as Record<string, unknown>;
      return { ...request, spec: { ...spec, env: { ...environment, ...asEnv(spec.env) } } };
    }
    return request;
  };
  return {
    call: <T>(request: Request, timeoutMs?: number) => control.call<T>(merge(request), timeoutMs),
    open: (request: Request) => control.open(merge(request)),
  };
}

function asEnv(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
}
