/** Where a PostgreSQL store keeps its tables, read from the driver's options. */
export interface SearchPath {
  /** The connection URL without its `search_path` parameter (the driver sets it itself). */
  url: string;
  /** The search_path every connection gets, or null for the server's default. */
  searchPath: string | null;
  /** The schema migrate() creates when missing (the first entry of the search path), or null. */
  schema: string | null;
}

/**
 * Reads the schema from `schema` (an unquoted name, taken as written) or else from the URL's
 * `?search_path=` (SQL syntax: an unquoted name folds to lower case, `"Name"` keeps its case),
 * so tests and benchmarks can give each run a fresh schema with nothing but a URL.
 */
export function searchPathOf(url: string, schema?: string): SearchPath {
  const q = url.indexOf('?');
  const params = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
  const fromUrl = params.get('search_path');
  params.delete('search_path');
  const rest = params.toString();
  const base = { url: (q < 0 ? url : url.slice(0, q)) + (rest ? `?${rest}` : '') };
  if (schema) return { ...base, searchPath: quoteIdent(schema), schema };
  if (fromUrl) return { ...base, searchPath: fromUrl, schema: firstSchema(fromUrl) };
  return { ...base, searchPath: null, schema: null };
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** The first name of a search_path value, as PostgreSQL reads it; null for `$user` or nothing. */
function firstSchema(searchPath: string): string | null {
  const first = /^\s*("(?:[^"]|"")*"|[^,]*)/.exec(searchPath)?.[1].trim() ?? '';
  if (first.startsWith('"')) return first.slice(1, -1).replace(/""/g, '"');
  return first === '' || first === '$user' ? null : first.toLowerCase();
}
