import { describe, expect, test } from 'vitest';
import { isSecretName } from './secrets.js';

describe('isSecretName', () => {
  test.for(['apikey', 'AUTH', 'GITHUB_TOKEN', 'db_password', 'SECRET_MESSAGE', 'aws_access_key_id', 'MY_CREDENTIALS', 'PWORD', 'passwd'])('%s looks secret', (name) => {
    expect(isSecretName(name)).toBe(true);
  });
  test.for(['KEYBOARD', 'AUTHOR', 'TOKENIZER_PATH', 'PUBLIC_KEY', 'gpg_public_key', 'VERSION', 'MONKEY'])('%s does not', (name) => {
    expect(isSecretName(name)).toBe(false);
  });
});
