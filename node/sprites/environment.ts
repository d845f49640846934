import type { Socket } from 'node:net';
import { ControlClient } from '../../vm/index.ts';

type Request = { op: string; [key: string]: unknown };

/**
 * A sprite's control client that gives its environment (set at create) to what the API starts in
 * it: every exec (commands, TTY sessions, control mode) and every service put, under their own
 * variables, which win. Other requests pass unchanged.
 */
export class EnvironmentControl extends ControlClient {
  readonly #environment: Readonly<Record<string, string>>;

  constructor(path: string, environment: Readonly<Record<string, string>>) {
    super(path);
    this.#environment = environment;
  }

  override call<T>(request: Request, timeoutMs?: number): Promise<T> {
    return super.call<T>(this.#merge(request), timeoutMs);
  }

  override open(request: Request): ReturnType<ControlClient['open']> {
    return super.open(this.#merge(request));
  }

  override stream<T>(request: Request): Promise<{ socket: Socket; result: T }> {
    return super.stream<T>(this.#merge(request));
  }

  #merge(request: Request): Request {
    const environment = this.#environment;
    if (request.op === 'exec') return { ...request, env: { ...environment, ...asEnv(request.env) } };
    if (request.op === 'services.stream' && request.action === 'put' && typeof request.spec === 'object' && request.spec !== null) {
      const spec = request.spec as Record<string, unknown>;
      return { ...request, spec: { ...spec, env: { ...environment, ...asEnv(spec.env) } } };
    }
    return request;
  }
}

/** The sprite's control client, with its environment when it has one. */
export function withEnvironment(control: ControlClient, path: string, environment: Readonly<Record<string, string>>): ControlClient {
  return Object.keys(environment).length === 0 ? control : new EnvironmentControl(path, environment);
}

function asEnv(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
}
