#!/usr/bin/env node
// The installed `seekable` command. It exists before the build runs, so `npm ci` can link it;
// the CLI itself is compiled to dist/.
import "../dist/main.js";
