import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { FastifySchemaCompiler } from 'fastify';

// Bodies are checked as sent: no type coercion and no silent removal of unknown fields (a
// misspelt field must be an error, not a default). Query strings arrive as text, so they are
// coerced ("?limit=10" is the number 10).
const strict = new Ajv({ allErrors: false, coerceTypes: false, removeAdditional: false, useDefaults: false, strict: false });
const coercing = new Ajv({ allErrors: false, coerceTypes: true, removeAdditional: false, useDefaults: true, strict: false });

const WHOLE_NUMBER = /^-?\d+$/;

export const validatorCompiler: FastifySchemaCompiler<object> = ({ schema, httpPart }) => {
  if (httpPart === 'body') return strict.compile(schema);
  const validate = coercing.compile(schema);
  const properties = (schema as { properties?: Record<string, { type?: string }> }).properties ?? {};
  const integers = Object.keys(properties).filter((k) => properties[k]?.type === 'integer');
  if (integers.length === 0) return validate;
  // ajv coerces with Number(): "?limit=0x10" would be 16 and "?limit=%20" (a space) 0. A whole
  // number in a query is written in decimal digits.
  const checked = ((data: Record<string, unknown>) => {
    const bad = integers.find((k) => typeof data?.[k] === 'string' && !WHOLE_NUMBER.test(data[k] as string));
    if (bad === undefined) {
      const ok = validate(data);
      checked.errors = validate.errors;
      return ok;
    }
    const error: ErrorObject = {
      instancePath: `/${bad}`,
      schemaPath: `#/properties/${bad}/type`,
      keyword: 'type',
      params: { type: 'integer' },
      message: 'must be integer',
    };
    checked.errors = [error];
    return false;
  }) as ValidateFunction;
  return checked;
};
