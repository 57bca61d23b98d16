#!/usr/bin/env node
// The `callosum` command. A file in git, not dist/bin.js itself, so that `pnpm install` in a fresh
// clone can link it before anything is built (and does not warn that the bin is missing).
import '../dist/bin.js';
