// Shared, expensive fixtures (reference tool build, real-data corpus) are prepared once per run.
export default async function setup(): Promise<void> {}
