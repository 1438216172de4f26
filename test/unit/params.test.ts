import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseOsParams, wrapSecrets } from '../../src/ganeti/params.ts';
import { Secret } from '../../src/util/secret.ts';

const base = { img_id: 'debian.img', img_format: 'diskdump' };
const check = (values: Record<string, string>, requireImage = true) =>
  parseOsParams(wrapSecrets(new Map(Object.entries(values))), { imageDir: '/var/lib/snf-image', requireImage });
const problems = (values: Record<string, string>) => check({ ...base, ...values }).problems;
const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('OS parameters', () => {
  it('accepts a complete valid set and types it', () => {
    const { params, problems: found } = check({
      ...base,
      img_passwd: 'hunter22',
      img_properties:
        '{"osfamily": "Linux", "root_partition": 1, "USERS": "root user1", "EXCLUDE_TASK_DeleteSSHKeys": true}',
      inst_properties: '{"SWAP": "2:512"}',
      img_personality: JSON.stringify([
        { path: '/etc/motd', contents: b64('hello'), owner: 'root', group: 'root', mode: 420 },
      ]),
      auth_keys:
        'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq0 user@host\n# comment\nfrom="10.0.0.1" ssh-rsa AAAAB3NzaC1yc2E= other',
      cloud_userdata: b64('#cloud-config\n'),
    });
    assert.deepEqual(found, []);
    assert.equal(params.imgId, 'debian.img');
    assert.ok(params.imgPasswd instanceof Secret);
    assert.equal(params.imgPasswd?.reveal(), 'hunter22');
    assert.deepEqual(params.imgProperties, {
      OSFAMILY: 'linux',
      ROOT_PARTITION: '1',
      USERS: 'root user1',
      EXCLUDE_TASK_DELETESSHKEYS: 'yes',
    });
    assert.deepEqual(params.instProperties, { SWAP: '2:512' });
    assert.equal(params.imgPersonality[0]?.path, '/etc/motd');
    assert.ok(params.authKeys instanceof Secret);
  });

  it('requires img_id and img_format unless a config_url may supply them', () => {
    assert.deepEqual(
      check({}).problems.map((p) => p.split(':')[0]),
      ['img_id', 'img_format'],
    );
    assert.match(
      check({ img_id: '', img_format: 'diskdump' }).problems[0] ?? '',
      /img_id: is required \(it is set but empty\)/,
    );
    assert.deepEqual(check({ config_url: 'http://127.0.0.1/x.json' }, false).problems, []);
  });

  it('checks each rule with a message naming the parameter', () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [
        { img_format: 'bogus' },
        /^img_format: 'bogus' is not a supported format \(one of diskdump, extdump, ntfsdump, qcow2, vmdk, vdi, vhdx\)$/,
      ],
      [{ img_id: 'local://../../etc/shadow' }, /^img_id: local image path escapes IMAGE_DIR/],
      [{ img_id: 'gopher://x/y' }, /^img_id: unsupported scheme 'gopher:'/],
      [{ img_id: 'http://' }, /^img_id: is not a valid URL|^img_id: URL has no host/],
      [{ img_passwd: 'a', img_passwd_hash: '$6$salt$hash' }, /^img_passwd, img_passwd_hash: give only one of them$/],
      [{ img_passwd: '' }, /^img_passwd: is set but empty/],
      [{ img_passwd_hash: 'plaintext' }, /^img_passwd_hash: is not a crypt\(3\) hash/],
      [{ img_properties: '{bad json' }, /^img_properties: is not valid JSON/],
      [{ img_properties: '[1]' }, /^img_properties: must be a JSON object$/],
      [{ img_properties: '{"OSFAMILY": "plan9"}' }, /^img_properties\.OSFAMILY: must be one of "linux", "windows"/],
      [{ img_properties: '{"ROOT_PARTITION": "0"}' }, /^img_properties\.ROOT_PARTITION: /],
      [
        { img_properties: '{"SWAP": "big"}' },
        /^img_properties\.SWAP: has an invalid value \(must be <partition number>:<size in MB> or a disk letter b-z\)$/,
      ],
      [
        { inst_properties: '{"bad-name": 1}' },
        /^inst_properties: has an invalid value \(property names are letters, digits and _\)$/,
      ],
      [
        { img_properties: '{"EXCLUDE_TASK_AddSwap": ["yes"]}' },
        /^img_properties\.EXCLUDE_TASK_ADDSWAP: must be string,number,boolean$/,
      ],
      [
        { img_properties: '{"EXCLUDE_TASK_DeleteSSHKey": "yes"}' },
        /^img_properties\.EXCLUDE_TASK_DELETESSHKEY: names no task that can be excluded \(EXCLUDE_TASK_ takes FixPartitionTable, .*DeleteSSHKeys, .*\)$/,
      ],
      [
        { inst_properties: '{"EXCLUDE_TASK_MountImage": "yes"}' },
        /^inst_properties\.EXCLUDE_TASK_MOUNTIMAGE: names no task that can be excluded/,
      ],
      [{ img_personality: '{"path": "/x"}' }, /^img_personality: must be array$/],
      [
        { img_personality: '[{"path": "relative", "contents": ""}]' },
        /^img_personality\.0\.path: has an invalid value \(must be an absolute path without \. or \.\. components\)$/,
      ],
      [{ img_personality: '[{"path": "/etc/../shadow", "contents": ""}]' }, /^img_personality\.0\.path: /],
      [
        { img_personality: '[{"path": "/x", "contents": "!!"}]' },
        /^img_personality\.0\.contents: has an invalid value \(must be base64\)$/,
      ],
      [
        { img_personality: '[{"path": "/x", "contents": "", "mode": 99999}]' },
        /^img_personality\.0\.mode: must be <= 4095$/,
      ],
      [
        { img_personality: '[{"path": "/x", "contents": "", "color": 1}]' },
        /^img_personality\.0: unknown key 'color'$/,
      ],
      [{ auth_keys: 'not a key' }, /^auth_keys: line 1 is not an OpenSSH public key/],
      [{ config_url: 'ftp://x/y' }, /^config_url: must be an http:\/\/ or https:\/\/ URL$/],
      [{ os_product_key: 'ABCDE-12345' }, /^os_product_key: must look like XXXXX-XXXXX-XXXXX-XXXXX-XXXXX$/],
      [
        { os_answer_file: '/tmp/unattend.xml' },
        /^os_answer_file: must be an http\(s\):\/\/, ftp\(s\):\/\/ or file:\/\/ URL$/,
      ],
      [{ cloud_userdata: 'not base64!' }, /^cloud_userdata: must be base64$/],
      [
        { img_properties: '{"OSFAMILY": "windows"}', img_passwd_hash: '$6$salt$hash' },
        /^img_passwd_hash: cannot be used with Windows images/,
      ],
      [
        { img_properties: '{"OSFAMILY": "linux"}', os_product_key: 'ABCDE-ABCDE-ABCDE-ABCDE-ABCDE' },
        /^os_product_key: only applies to Windows images \(OSFAMILY is linux\)$/,
      ],
    ];
    for (const [values, rule] of cases) {
      const found = problems(values);
      assert.ok(
        found.some((p) => rule.test(p)),
        `${JSON.stringify(values)} -> ${JSON.stringify(found)}`,
      );
    }
  });

  it('accepts every img_id form', () => {
    for (const id of [
      'debian.img',
      'local://debian.img',
      'file://debian.img',
      'local:///var/lib/snf-image/debian.img',
      'http://127.0.0.1/x.img',
      'https://h/x',
      'ftp://h/x',
      'null',
      'sub/dir/x.img',
    ]) {
      assert.deepEqual(problems({ img_id: id }), [], id);
    }
  });

  it('never puts a secret value into a problem', () => {
    const secret = 'Sup3r-Secret-Value';
    const found = check({
      img_passwd: secret,
      img_passwd_hash: secret,
      auth_keys: secret,
      os_product_key: secret,
      cloud_userdata: `${secret}!`,
    }).problems;
    assert.ok(found.length >= 4);
    for (const p of found) assert.ok(!p.includes(secret), p);
  });
});
