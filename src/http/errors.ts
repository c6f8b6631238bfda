import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { describeSchemaError } from '../core/submit.js';
import { ConveyorError } from '../errors.js';
import type { Logger } from '../log.js';
import { isConflict, isUnavailable } from '../store/store-error.js';
import { lingerAfterRefusal } from './linger.js';

// Fastify's own errors, each mapped to one code of the catalogue.
const FASTIFY: Record<string, (e: FastifyError) => ConveyorError> = {
  FST_ERR_CTP_INVALID_JSON_BODY: (e) =>
    new ConveyorError(
      'invalid_json',
      `the body is not valid JSON: ${e.message.replace(/^Body is not valid JSON but content-type is set to 'application\/json'\s*/i, '').slice(0, 200) || 'parse error'}`,
    ),
  FST_ERR_CTP_EMPTY_JSON_BODY: () => new ConveyorError('invalid_json', 'the body is empty; send a JSON object'),
  FST_ERR_CTP_BODY_TOO_LARGE: () => new ConveyorError('body_too_large'),
  FST_ERR_CTP_INVALID_MEDIA_TYPE: () => new ConveyorError('unsupported_media_type', 'send the body as application/json'),
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: () => new ConveyorError('invalid_json', 'Content-Length does not match the body'),
  FST_ERR_CTP_INVALID_TYPE: () => new ConveyorError('unsupported_media_type', 'send the body as application/json'),
};

/** Turns anything a route throws into {"error":{"code","message"}} with its status. */
export function toConveyorError(err: unknown, log?: Logger): ConveyorError {
  if (err instanceof ConveyorError) return err;
  const fe = err as FastifyError & { validation?: Array<import('ajv').ErrorObject>; validationContext?: string };
  if (fe?.validation?.length) {
    const where = fe.validationContext === 'querystring' ? 'query: ' : fe.validationContext === 'params' ? 'path: ' : '';
    return new ConveyorError('validation_failed', where + describeSchemaError(fe.validation));
  }
  if (fe?.code && FASTIFY[fe.code]) return FASTIFY[fe.code](fe);
  if (fe instanceof SyntaxError || (fe?.statusCode === 400 && /JSON/i.test(fe.message))) {
    return new ConveyorError('invalid_json', `the body is not valid JSON: ${fe.message.slice(0, 200)}`);
  }
  if (fe?.statusCode === 400 && /__proto__|constructor/.test(fe.message)) {
    return new ConveyorError('invalid_json', 'the body holds a __proto__ or constructor.prototype key, which is refused');
  }
  if (isUnavailable(err)) return new ConveyorError('store_unavailable', undefined, { retryAfterS: 1, cause: err });
  if (isConflict(err)) {
    // Run again several times already (GroupCommit); the next try is the caller's.
    const message = 'the database gave the write up as clashing with concurrent writes (a deadlock); retry';
    return new ConveyorError('store_unavailable', message, { retryAfterS: 1, cause: err });
  }
  log?.error({ err }, 'unexpected error answering a request');
  return new ConveyorError('internal_error');
}

export function sendError(reply: FastifyReply, e: ConveyorError): FastifyReply {
  if (e.retryAfterS !== undefined) reply.header('retry-after', String(e.retryAfterS));
  lingerAfterRefusal(reply);
  return reply.code(e.status).type('application/json').send(e.toJSON());
}

/**
 * Fastify's errors from before routing (frameworkErrors): a path whose %-escapes do not decode
 * (%FF, half of a UTF-8 sequence), and a path segment longer than the router takes.
 */
export function frameworkError(log: Logger) {
  return (err: FastifyError, _req: FastifyRequest, reply: FastifyReply): void => {
    const e =
      err.code === 'FST_ERR_BAD_URL'
        ? new ConveyorError('validation_failed', 'the URL path holds a %-escape that is not UTF-8')
        : err.code === 'FST_ERR_MAX_PARAM_LENGTH'
          ? new ConveyorError('uri_too_long')
          : toConveyorError(err, log); // anything else is unexpected: logged, answered 500
    void sendError(reply, e);
  };
}

/**
 * Requests Node's HTTP parser refuses before Fastify sees them (a malformed request line or
 * header, both Content-Length and Transfer-Encoding, headers over 16 KiB): answered in the
 * catalogue's shape like every other error, then the connection closes, as the parser has
 * lost its place in the stream.
 */
export function clientError(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const e =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? new ConveyorError('headers_too_large')
      : new ConveyorError('bad_request', `the request is not well-formed HTTP (${err.code ?? err.message})`);
  const body = JSON.stringify(e.toJSON());
  socket.end(
    `HTTP/1.1 ${e.status} ${STATUS_CODES[e.status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

export function errorHandler(log: Logger) {
  return (err: unknown, _req: FastifyRequest, reply: FastifyReply) => sendError(reply, toConveyorError(err, log));
}
