import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/**
 * A check of basic-auth credentials in constant time: both sides are hashed to equal lengths, and the
 * user and the password are both compared whatever the first comparison found.
 */
export function createCredentialCheck(expected: {
  user: string;
  password: string;
}): (user: string, password: string) => boolean {
  const user = digest(expected.user);
  const password = digest(expected.password);
  return (u, p) => {
    const userOk = timingSafeEqual(digest(u), user);
    const passwordOk = timingSafeEqual(digest(p), password);
    return userOk && passwordOk;
  };
}
