import { Ajv } from 'ajv';
import type { FastifySchemaCompiler } from 'fastify';

// Bodies are checked as sent: no type coercion and no silent removal of unknown fields (a
// misspelt field must be an error, not a default). Query strings arrive as text, so they are
// coerced ("?limit=10" is the number 10).
const strict = new Ajv({ allErrors: false, coerceTypes: false, removeAdditional: false, useDefaults: false, strict: false });
const coercing = new Ajv({ allErrors: false, coerceTypes: true, removeAdditional: false, useDefaults: true, strict: false });

export const validatorCompiler: FastifySchemaCompiler<object> = ({ schema, httpPart }) =>
  (httpPart === 'body' ? strict : coercing).compile(schema);
