import { describe, expect, it } from 'vitest';
import { isStoreAway, retryWhileStoreAway } from './store-away.js';

describe('retryWhileStoreAway', () => {
  it('tries again while the store is away, and gives up at once on any other error or when told to', async () => {
    expect(isStoreAway(new Error('READONLY You can not write against a read only replica.'))).toBe(true);
    expect(isStoreAway(new Error('Connection is closed.'))).toBe(true);
    expect(isStoreAway(new Error('ERR Error running script: attempt to compare nil with number'))).toBe(false);

    let tries = 0;
    const away = async () => {
      if (++tries < 3) throw new Error('CLUSTERDOWN The cluster is down');
      return 'recorded';
    };
    expect(await retryWhileStoreAway(away, [1, 1, 1])).toBe('recorded');
    expect(tries).toBe(3);

    tries = 0;
    const broken = async () => {
      tries++;
      throw new Error('ERR Error running script');
    };
    await expect(retryWhileStoreAway(broken, [1, 1])).rejects.toThrow('ERR Error running script');
    expect(tries).toBe(1);

    tries = 0;
    const heard: number[] = [];
    await expect(
      retryWhileStoreAway(
        async () => {
          tries++;
          throw new Error('Connection is closed.');
        },
        [1, 2, 3],
        (_err, wait) => heard.push(wait) < 2,
      ),
    ).rejects.toThrow('Connection is closed.');
    expect(heard).toEqual([1, 2]);
    expect(tries).toBe(2);
  });
});
