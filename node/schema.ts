/**
 * A small JSON-schema subset for request bodies: object (properties, required,
 * additionalProperties), string (pattern, minLength, maxLength), integer and number (minimum,
 * maximum; an integer may also be `nullable`), boolean, array (items, maxItems). Unknown fields are
 * rejected unless a schema allows them.
 */
export type Schema =
  | { type: 'object'; properties?: Record<string, Schema>; required?: string[]; additionalProperties?: false | Schema; maxProperties?: number }
  | { type: 'string'; pattern?: string; minLength?: number; maxLength?: number; description?: string }
  | { type: 'integer'; minimum?: number; maximum?: number; nullable?: true }
  | { type: 'number'; minimum?: number; maximum?: number }
  | { type: 'boolean' }
  | { type: 'array'; items: Schema; maxItems?: number };

/** Returns the first violation as a message naming the field, or undefined when `value` fits. */
export function validate(schema: Schema, value: unknown, path = 'body'): string | undefined {
  switch (schema.type) {
    case 'object': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return `${path} must be an object`;
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record);
      if (schema.maxProperties !== undefined && keys.length > schema.maxProperties) return `${path} has more than ${schema.maxProperties} fields`;
      for (const key of schema.required ?? []) if (record[key] === undefined) return `${path}.${key} is required`;
      for (const key of keys) {
        const property = schema.properties?.[key];
        const inner = property ?? schema.additionalProperties;
        if (!inner) return `${path}.${key} is not a known field`;
        const problem = validate(inner, record[key], `${path}.${key}`);
        if (problem) return problem;
      }
      return undefined;
    }
    case 'string':
      if (typeof value !== 'string') return `${path} must be a string`;
      if (schema.minLength !== undefined && value.length < schema.minLength) return `${path} must have at least ${schema.minLength} characters`;
      if (schema.maxLength !== undefined && value.length > schema.maxLength) return `${path} must have at most ${schema.maxLength} characters`;
      if (schema.pattern !== undefined && !new RegExp(schema.pattern).test(value)) return `${path} ${schema.description ?? `must match ${schema.pattern}`}`;
      return undefined;
    case 'integer':
      if (value === null && schema.nullable) return undefined;
      if (!Number.isInteger(value)) return `${path} must be an integer${schema.nullable ? ' or null' : ''}`;
      if (schema.minimum !== undefined && (value as number) < schema.minimum) return `${path} must be at least ${schema.minimum}`;
      if (schema.maximum !== undefined && (value as number) > schema.maximum) return `${path} must be at most ${schema.maximum}`;
      return undefined;
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) return `${path} must be a number`;
      if (schema.minimum !== undefined && value < schema.minimum) return `${path} must be at least ${schema.minimum}`;
      if (schema.maximum !== undefined && value > schema.maximum) return `${path} must be at most ${schema.maximum}`;
      return undefined;
    case 'boolean':
      return typeof value === 'boolean' ? undefined : `${path} must be true or false`;
    case 'array': {
      if (!Array.isArray(value)) return `${path} must be an array`;
      if (schema.maxItems !== undefined && value.length > schema.maxItems) return `${path} must have at most ${schema.maxItems} items`;
      for (let i = 0; i < value.length; i++) {
        const problem = validate(schema.items, value[i], `${path}[${i}]`);
        if (problem) return problem;
      }
      return undefined;
    }
  }
}
