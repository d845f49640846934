import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validate, type Schema } from '../../node/schema.ts';

const service: Schema = {
  type: 'object',
  required: ['cmd'],
  properties: {
    cmd: { type: 'string', minLength: 1 },
    args: { type: 'array', items: { type: 'string' }, maxItems: 2 },
    env: { type: 'object', additionalProperties: { type: 'string' } },
    httpPort: { type: 'integer', minimum: 1, maximum: 65535 },
  },
  additionalProperties: false,
};

test('accepts a value that fits', () => {
  assert.equal(validate(service, { cmd: 'httpd', args: ['-f'], env: { A: 'b' }, httpPort: 8080 }), undefined);
});

test('names the field that breaks the schema', () => {
  assert.equal(validate(service, {}), 'body.cmd is required');
  assert.equal(validate(service, { cmd: 'x', extra: 1 }), 'body.extra is not a known field');
  assert.equal(validate(service, { cmd: 'x', args: ['a', 2] }), 'body.args[1] must be a string');
  assert.equal(validate(service, { cmd: 'x', args: ['a', 'b', 'c'] }), 'body.args must have at most 2 items');
  assert.equal(validate(service, { cmd: 'x', env: { A: 1 } }), 'body.env.A must be a string');
  assert.equal(validate(service, { cmd: 'x', httpPort: 70000 }), 'body.httpPort must be at most 65535');
  assert.equal(validate(service, { cmd: 'x', httpPort: 1.5 }), 'body.httpPort must be an integer');
  assert.equal(validate(service, null), 'body must be an object');
  assert.equal(validate(service, [1]), 'body must be an object');
});
