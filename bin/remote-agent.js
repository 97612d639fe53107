#!/usr/bin/env node
require('../dist/remote-agent/cli.js').run();
