// Default-exports the task a test put on globalThis: a defineTask result without importing
// '@callosum/core', which core's own tests cannot resolve.
export default globalThis.callosumFixtureTask;
