// Entry of an isolated lambda's thread or process when Conveyor runs from its TypeScript
// sources (the tests): loads runner.ts through tsx. The build runs dist/.../runner.js directly.
import { tsImport } from 'tsx/esm/api';

await tsImport('./runner.ts', import.meta.url);
