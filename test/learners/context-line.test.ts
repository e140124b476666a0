// The context-line classifier: the lines a kernel prints around an event (register dumps, stack
// frames, code bytes) are told from events by their shape. Positives and negatives from Blue
// Gene/L RAS logs (Loghub BGL, development split, and the shapes of Loghub's BGL template list with
// values of our own) and from Linux oopses, warnings and ordinary kernel events.
import { describe, expect, it } from 'vitest';
import { type ContextShape, contextShape } from '../../learners/context-line.ts';

const BGL_CONTEXT: [string, ContextShape][] = [
  ['instruction address: 0x00004ed8', 'register'],
  ['data address: 0x1d3b0a80', 'register'],
  ['core configuration register: 0x00002000', 'register'],
  ['exception syndrome register: 0x00800000', 'register'],
  ['machine state register: 0x0002f900', 'register'],
  ['Core Configuration Register 0: 00002000', 'register'],
  ['DDR failing data registers: 0x20000000 0x0000ffff', 'register'],
  ['machine check: i-fetch......................0', 'leaders'],
  ['program interrupt: illegal instruction......0', 'leaders'],
  ['program interrupt: fp cr field .............0', 'leaders'],
  ['floating pt ex mode 0 enable......0', 'leaders'],
  ['floating point instr. enabled.....1', 'leaders'],
  ['problem state (0=sup,1=usr).......1', 'leaders'],
  ['data store interrupt caused by dcbf.........0', 'leaders'],
  ['guaranteed instruction cache block touch.0', 'leaders'],
  ['size of DDR we are caching...............1 (512M)', 'leaders'],
  ['lr:00004ed0 cr:28244842 xer:20000002 ctr:00086000', 'pairs'],
  ['r00=0x00000000 r01=0x1ffffe60 r02=0x00000000 r03=0x00000002', 'pairs'],
  ['msr=0x0002f900 dear=0x1d3b0a80 esr=0x00800000 fpscr=0x00000000', 'pairs'],
  ['special purpose registers:', 'header'],
  ['General Purpose Registers:', 'header'],
  ['fpr12=0xffffffff 3ff00000 00000000 00000000', 'hexrow'],
];

const LINUX_CONTEXT: [string, ContextShape][] = [
  ['RIP: 0010:__list_del_entry_valid+0x25/0xc0', 'frame'],
  ['RIP: 0033:0x7f1c2d3e4f50', 'register'],
  ['RSP: 0018:ffffb1a7c0b0fd58 EFLAGS: 00010246', 'pairs'],
  ['RAX: 0000000000000000 RBX: ffff8e7d4a1c2000 RCX: 0000000000000001', 'pairs'],
  ['FS:  0000000000000000(0000) GS:ffff8e7d7fc80000(0000) knlGS:0000000000000000', 'pairs'],
  ['CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033', 'pairs'],
  ['CR2: 0000000000000008', 'register'],
  ['CPU: 3 PID: 1234 Comm: kworker/3:1 Not tainted 5.15.0-91-generic #101-Ubuntu', 'pairs'],
  ['Call Trace:', 'header'],
  [' <TASK>', 'marker'],
  [' </IRQ>', 'marker'],
  [' ? __die+0x23/0x70', 'frame'],
  [' process_one_work+0x1e2/0x3b0', 'frame'],
  [' nvme_irq+0x10c/0x280 [nvme]', 'frame'],
  [' [<ffffffff8108d2c5>] ? dump_stack+0x5c/0x7b', 'frame'],
  ['PC is at dwc2_hsotg_irq+0x2e8/0x5d0', 'frame'],
  ['Code: 48 8b 47 08 48 85 c0 74 0b <0f> 0b 48 89 fe 48 c7 c7 00', 'code'],
  ['---[ end trace 0b4d2f1ae63c9e2f ]---', 'marker'],
  ['Stack: ffff8e7d4a1c2000 0000000000000000 ffffb1a7c0b0fd58 0000000000000246', 'hexrow'],
];

const EVENTS: string[] = [
  // Blue Gene/L events (alerts and not), Loghub BGL
  'data TLB error interrupt',
  'data storage interrupt',
  'ciod: failed to read message prefix on control stream (CioStream socket to 172.16.96.116:33569',
  'rts panic! - stopping execution',
  'rts internal error',
  'ciod: Error creating node map from file /p/gb2/cabot/miranda/newmaps/8k_128x64x1_8x4x4.map: No child processes',
  'ciod: LOGIN chdir(/p/gb2/glosli/8M_5000K/t800) failed: No such file or directory',
  'ciod: Error loading ./runtime_malloc: invalid or missing program image, No such file or directory',
  'generating core.2275',
  'CE sym 2, at 0x0b85eee0, mask 0x05',
  'instruction cache parity error corrected',
  '63543 double-hummer alignment exceptions',
  'Lustre mount FAILED : bglio11 : block_id : location',
  'machine check interrupt (bit=0x1d): L2 dcache unit data parity error',
  'power module status fault detected on node card. status registers are: 0x00000000 0x00000001',
  'MACHINE CHECK DCR read timeout (mc=e08x iar 0x00000000 lr 0xc00045a4)',
  'Can not get assembly information for node card',
  // a dump line glued to its event (a line of Loghub's BGL template list): the event wins
  'data TLB error interrupt data address space................0',
  // Linux events
  'BUG: kernel NULL pointer dereference, address: 0000000000000008',
  'BUG: unable to handle page fault for address: ffffffffc0a01234',
  '#PF: supervisor read access in kernel mode',
  'Oops: 0000 [#1] PREEMPT SMP NOPTI',
  'general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] SMP PTI',
  'Kernel panic - not syncing: Fatal exception',
  'Out of memory: Killed process 1234 (java) total-vm:123456kB, anon-rss:45678kB, file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:2048kB oom_score_adj:0',
  'EXT4-fs error (device sda1): ext4_find_entry:1455: inode #2: comm nginx: reading directory lblock 0',
  'XFS (sdb1): metadata I/O error in "xfs_btree_read_buf_block.constprop.0+0x95/0xd0 [xfs]" at daddr 0x1b2f8 len 8 error 5',
  'WARNING: CPU: 2 PID: 123 at drivers/gpu/drm/i915/display/intel_dp.c:1203 intel_dp_compute_link_config+0x5a/0x290 [i915]',
  'watchdog: BUG: soft lockup - CPU#2 stuck for 23s! [kworker/2:1:123]',
  'INFO: task kworker/0:1:123 blocked for more than 120 seconds.',
  'CPU12: Core temperature above threshold, cpu clock throttled (total events = 12345)',
  'mce: [Hardware Error]: Machine check events logged',
  'EDAC MC0: 1 CE memory read error on CPU_SrcID#0_Ha#0_Chan#1_DIMM#0 (channel:1 slot:0 page:0x12345 offset:0x0 grain:32 syndrome:0x0)',
  'ACPI Error: AE_NOT_FOUND, Evaluating _DSM (20230331/nsprepkg-94)',
  'e1000e 0000:00:1f.6 eth0: Detected Hardware Unit Hang:',
  'blk_update_request: I/O error, dev sda, sector 12345 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 0',
  'audit: type=1400 audit(1700000123.456:789): apparmor="STATUS" operation="profile_replace"',
  'hrtimer: interrupt took 123456 ns',
  'Linux version 5.15.0-91-generic (buildd@lcy02-amd64-045)',
  'status: added',
  '[UFW BLOCK] IN=eth0 OUT= MAC=00:11:22:33:44:55 SRC=10.0.0.9 DST=10.0.0.1 LEN=40 TOS=0x00',
  '',
];

describe('context lines (context-line.ts)', () => {
  it.each(BGL_CONTEXT)('BGL dump line %j is context (%s)', (line, shape) => {
    expect(contextShape(line)).toBe(shape);
  });

  it.each(LINUX_CONTEXT)('oops line %j is context (%s)', (line, shape) => {
    expect(contextShape(line)).toBe(shape);
  });

  it.each(EVENTS)('%j is an event', (line) => {
    expect(contextShape(line)).toBeNull();
  });

  it('reads the shape, not the words: the same label with words after it is an event', () => {
    expect(contextShape('data address: 0x1d3b0a80')).toBe('register');
    expect(contextShape('data address: bad checksum on read')).toBeNull();
    expect(contextShape('machine check: i-fetch......................0')).toBe('leaders');
    expect(contextShape('machine check: i-fetch failed, halting core 0')).toBeNull();
    // a very long line is never taken for context
    expect(contextShape(`lr:00004ed0 cr:28244842 ${'x'.repeat(500)}`)).toBeNull();
  });

  it('reads tabs, newlines and runs of spaces as single spaces, whichever shape', () => {
    for (const [line, shape] of [...BGL_CONTEXT, ...LINUX_CONTEXT]) {
      expect(contextShape(`\t${line.replaceAll(' ', ' \t  ')}\n`)).toBe(shape);
      expect(contextShape(line.replaceAll(' ', '  '))).toBe(shape);
    }
    for (const line of EVENTS) expect(contextShape(line.replaceAll(' ', '\t'))).toBeNull();
  });
});
