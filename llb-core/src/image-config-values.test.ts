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

// The IP part of IP:HOSTPORT:PORT, as go-connections v0.4.0 (vendored by BuildKit v0.11.6) checks
// it: net.SplitHostPort(ip + ":") takes the brackets off an IPv6 address, then net.ParseIP.
describe('parsePortSpecs host IPs', () => {
  test('IPv4 and bracketed IPv6 addresses are taken and left out of the exposed ports', () => {
    expect(parsePortSpecs(['127.0.0.1:8080:80', '0.0.0.0::81/udp', '[::1]:8082:82', '[2001:db8::1]:83:83', '[::ffff:10.0.0.1]::84', '[10.0.0.1]:85:85'])).toEqual(['80/tcp', '81/udp', '82/tcp', '83/tcp', '84/tcp', '85/tcp']);
  });

  test.each([
    ['999.1.1.1:80:80/tcp', 'invalid IP address: 999.1.1.1'],
    ['1.2.3:80:80', 'invalid IP address: 1.2.3'],
    ['01.2.3.4:80:80', 'invalid IP address: 01.2.3.4'],
    ['localhost:80:80', 'invalid IP address: localhost'],
    ['1.2.3.4.5:80:80', 'invalid IP address: 1.2.3.4.5'],
    ['[fe80::1%eth0]:80:80', 'invalid IP address: fe80::1%eth0'],
    ['[1:2:3:4:5:6:7:8:9]:80:80', 'invalid IP address: 1:2:3:4:5:6:7:8:9'],
    ['[::g]:80:80', 'invalid IP address: ::g'],
    // no brackets: Go's SplitHostPort sees too many colons (newer go-connections takes it)
    ['::1:80:80', 'invalid IP address ::1: address ::1:: too many colons in address'],
    ['[::1:80:80', "invalid IP address [::1: address [::1:: missing ']' in address"],
    ['[::1]x:80:80', 'invalid IP address [::1]x: address [::1]x:: missing port in address'],
    ['a]:80:80', "invalid IP address a]: address a]:: unexpected ']' in address"],
  ])('%s is refused with nat\'s message', (spec, message) => {
    expect(() => parsePortSpecs([spec])).toThrow(message);
  });
});
