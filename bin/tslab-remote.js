#!/usr/bin/env node
require('../dist/kernel-ext/cli.js').runCli();
