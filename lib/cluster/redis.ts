/**
 * Redis connections for the driver and the workers. Both ride out a Redis restart: commands wait
 * for the reconnection instead of failing (maxRetriesPerRequest: null, as BullMQ's workers
 * require), and the reconnection is retried with a capped backoff, forever; the driver's progress
 * loop and the workers' BullMQ loops resume where they were.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { SegflowError } from '../errors.js';

/** Check a redis:// or rediss:// URL. */
export function checkRedisUrl(url: string | undefined, flag: string): string {
  if (!url) throw new SegflowError('ERR_USAGE', `${flag} is required (redis://HOST:PORT)`);
  if (!/^rediss?:\/\//.test(url)) throw new SegflowError('ERR_USAGE', `${flag} ${url}: expected redis://HOST:PORT or rediss://HOST:PORT`);
  try {
    new URL(url);
  } catch {
    throw new SegflowError('ERR_USAGE', `${flag} ${url}: not a URL`);
  }
  return url;
}

/** A connection that waits out Redis restarts. */
export function connect(url: string, onError?: (err: Error) => void): Redis {
  const options: RedisOptions = {
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    retryStrategy: (times) => Math.min(100 * times, 2000),
    // a Redis that restarts as a replica, or a failover in progress, answers READONLY: reconnect
    reconnectOnError: (err) => /READONLY/.test(err.message),
  };
  const redis = new Redis(url, options);
  // ioredis reports every failed reconnection: one line per outage is enough
  let down = false;
  redis.on('error', (err: Error) => {
    if (!down) onError?.(err);
    down = true;
  });
  redis.on('ready', () => {
    down = false;
  });
  return redis;
}
