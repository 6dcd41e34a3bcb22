/**
 * chevrotain, loaded from the single-file bundle the package ships (`lib/chevrotain.min.mjs`,
 * same version) instead of its module tree: the tree pulls in hundreds of lodash-es modules and
 * costs about a second of CLI start-up; the bundle loads in a few milliseconds. The package's
 * `exports` map does not list the bundle, so it is located next to the resolved entry point.
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import type * as Chevrotain from 'chevrotain';

const entry = createRequire(import.meta.url).resolve('chevrotain'); // …/chevrotain/lib/src/api.js
const chevrotain = (await import(new URL('../chevrotain.min.mjs', pathToFileURL(entry)).href)) as typeof Chevrotain;

export const { Lexer, createToken } = chevrotain;
