import { isUtf8 } from 'node:buffer';
import { MIMEType } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { ConveyorError } from '../errors.js';

/**
 * How every request body is read: JSON only (Fastify's text/plain parser is removed, so a body
 * of another type is 415 unsupported_media_type rather than a string that fails validation),
 * through Fastify's JSON parser (secure-json-parse: __proto__ and constructor.prototype refused) behind
 * a UTF-8 check. Fastify decodes bodies with replacement characters, so invalid bytes would
 * otherwise reach the store silently changed; payloads are kept as sent, or refused.
 * JSON.parse itself is iterative (a 100,000-deep array parses); depth is limited later, where
 * a payload is written as JSON text (see payloadError).
 */
export function strictJsonBodies(scope: FastifyInstance): void {
  scope.removeContentTypeParser('text/plain');
  const parse = scope.getDefaultJsonParser('error', 'error');
  scope.removeContentTypeParser('application/json');
  scope.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
    const charset = charsetOf(req.headers['content-type']);
    if (charset !== null && !UTF8_READABLE.has(charset)) {
      // JSON between systems is UTF-8 (RFC 8259); read as UTF-8, such a body would be changed or refused for its bytes.
      done(
        new ConveyorError('unsupported_media_type', `send the body as UTF-8 (charset=utf-8), not charset=${charset.slice(0, 40)}`),
        undefined,
      );
      return;
    }
    const buf = body as Buffer;
    if (!isUtf8(buf)) {
      done(new ConveyorError('invalid_json', 'the body is not valid UTF-8'), undefined);
      return;
    }
    const text = buf.toString('utf8');
    parse(req, text, (err, value) => (err ? done(whyRefused(text), undefined) : done(null, value)));
  });
}

/** Charsets a body is read the same in as in UTF-8: UTF-8 itself, and US-ASCII, a subset of it. */
const UTF8_READABLE: ReadonlySet<string> = new Set(['utf-8', 'utf8', 'us-ascii']);

/** The charset parameter of a Content-Type, lower-cased and unquoted; null when there is none. */
function charsetOf(contentType: string | undefined): string | null {
  // Parsed as browsers parse a MIME type (quoted values, parameter names in any case); a header
  // it cannot read passed Fastify as JSON, and is read as UTF-8 like one without a charset.
  try {
    return new MIMEType(contentType ?? '').params.get('charset')?.toLowerCase() || null;
  } catch {
    return null;
  }
}

/** Fastify's parser answers "not valid JSON" for everything; say which of its two refusals it was. */
function whyRefused(text: string): ConveyorError {
  if (text.length === 0) return new ConveyorError('invalid_json', 'the body is empty; send a JSON object');
  try {
    JSON.parse(text);
  } catch (err) {
    return new ConveyorError('invalid_json', `the body is not valid JSON: ${(err as Error).message.slice(0, 200)}`);
  }
  return new ConveyorError('invalid_json', 'the body holds a __proto__ or constructor.prototype key, which is refused');
}
