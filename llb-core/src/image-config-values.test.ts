import { describe, expect, test } from 'vitest';
import { parsePortSpecs, parseSignal } from './image-config-values.js';

// go-connections nat.ParsePortSpecs, as BuildKit's EXPOSE calls it: the host part of
// HOSTPORT:PORT is checked too, though only the container port is exposed.
describe('parsePortSpecs host ports', () => {
  test('a valid host port or range is taken and left out of the exposed ports', () => {
    expect(parsePortSpecs(['8080:80', '9000-9002:9000-9002/udp', '7000-7005:81', '127.0.0.1:5000:5000'])).toEqual(['5000/tcp', '80/tcp', '81/tcp', '9000/udp', '9001/udp', '9002/udp']);
  });

  test.each([
    ['abc:80', 'invalid hostPort: abc'],
    ['70000:80', 'invalid hostPort: 70000'],
    ['90-80:80', 'invalid hostPort: 90-80'],
    ['8080-8081:80-82', 'invalid ranges specified for container and host Ports: 80-82 and 8080-8081'],
    ['127.0.0.1:x:80/udp', 'invalid hostPort: x'],
  ])('%s is refused with nat\'s message', (spec, message) => {
    expect(() => parsePortSpecs([spec])).toThrow(message);
  });

  test('an empty host part is no host port', () => {
    expect(parsePortSpecs([':80', '127.0.0.1::81'])).toEqual(['80/tcp', '81/tcp']);
  });
});

// moby/sys/signal ParseSignal with its Linux SignalMap, as BuildKit's STOPSIGNAL calls it.
describe('parseSignal real-time names', () => {
  test('RTMIN+1..15 and RTMAX-14..1 are names; RTMAX-15 is not one', () => {
    expect(parseSignal('SIGRTMIN+15')).toBe(49);
    expect(parseSignal('rtmax-14')).toBe(50);
    expect(parseSignal('RTMAX')).toBe(64);
    expect(() => parseSignal('RTMAX-15')).toThrow('Invalid signal: RTMAX-15');
    expect(() => parseSignal('RTMIN+16')).toThrow('Invalid signal: RTMIN+16');
  });
});
