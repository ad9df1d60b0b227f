/** Piscina task: the stream's load and export steps (lib/stream/task.ts). */
import { tagged } from '../lib/errors.js';
import { runStreamTask, type StreamTask } from '../lib/stream/task.js';

export default tagged((task: StreamTask) => runStreamTask(task));
