/** An error with a code the peer and the inside API pass on. */
export function coded(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}
