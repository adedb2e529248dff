// The benchmark's node app: an express server answering on $PORT (default 8080).
// `node -e "require('express')"` in /app is the start the benchmark measures.
const express = require("express");

const app = express();
app.get("/", (_req, res) => res.json({ ok: true }));

if (require.main === module) {
  const port = Number(process.env.PORT) || 8080;
  app.listen(port, () => process.stdout.write(`listening on ${port}\n`));
}

module.exports = app;
