// Loaded by mocha before any test (.mocharc.json `require`): every temp directory a test made with tmp-promise is
// removed when the run ends, also those of a test that failed before its own clean-up, so a run leaves nothing in
// the system's temp directory.

import * as tmp from 'tmp-promise';

tmp.setGracefulCleanup();
