//! Garbage commands: each completes once with some status, and the
//! controller neither dies nor writes outside the buffers it was given.

use crate::env::DmaBuf;
use crate::nvme::emu::{nvm_opc, EmuController, Sqe, Status};

use super::host::Host;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[(self.next() % v.len() as u64) as usize]
    }
}

/// A data pointer that is either garbage or inside `page` (one 4 KiB page,
/// so a transfer can never run from it into someone else's memory).
fn data_pointer(rng: &mut Rng, s: &mut Sqe, page: &DmaBuf, sgl: bool) {
    if rng.next() % 2 == 0 {
        s.prp1 = page.iova() + (rng.next() % 1024) * 4;
        s.prp2 = rng.next();
    } else {
        s.prp1 = rng.next();
        s.prp2 = rng.next();
        if sgl && rng.next() % 2 == 0 {
            s.cdw0 |= 1 << 14;
        }
    }
}

#[test]
fn random_commands_never_break_the_controller() {
    let e = EmuController::builder()
        .namespace(512, 4096)
        .namespace(4096, 64)
        .sgl(true)
        .build()
        .unwrap();
    let mut h = Host::new(e);
    h.create_io_queue(1, 32);
    let page = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut ok = 0;
    let io_ops = [
        0x00, 0x01, 0x02, 0x05, 0x08, 0x09, 0x04, 0x0c, 0x11, 0x81, 0xff,
    ];
    for _ in 0..3000 {
        let r = rng.next() as u32;
        let mut s = Sqe::new(rng.pick(&io_ops), 0);
        s.nsid = rng.pick(&[1, 2, 3, 0, u32::MAX, r]);
        s.cdw10 = rng.next() as u32 % 8192;
        s.cdw11 = rng.pick(&[0, 4, r]);
        s.cdw12 = rng.pick(&[0, 7, 255, r]);
        s.cdw0 |= rng.pick(&[0, 0, 0, 1 << 8]);
        data_pointer(&mut rng, &mut s, &page, true);
        let c = h.cmd(1, s);
        assert_eq!(c.sqid, 1);
        ok += c.status.is_success() as u32;
    }
    eprintln!("{ok} of 3000 random I/O commands succeeded");
    assert!(ok > 100 && ok < 2900, "the mix exercises both paths");
    // Admin commands that cannot take the I/O queue away or stay outstanding.
    let admin_ops = [
        0x02, 0x06, 0x08, 0x09, 0x0a, 0x18, 0x7c, 0x80, 0x03, 0x10, 0xc0,
    ];
    for _ in 0..500 {
        let r = rng.next() as u32;
        let mut s = Sqe::new(rng.pick(&admin_ops), 0);
        s.nsid = rng.pick(&[0, 1, 2, u32::MAX, r]);
        s.cdw10 = rng.pick(&[1, 2, 3, 4, 6, 7, 0x0b, r]) & 0x0fff_ffff;
        s.cdw11 = rng.next() as u32;
        s.cdw12 = rng.pick(&[0, 4, r]);
        data_pointer(&mut rng, &mut s, &page, false);
        h.cmd(0, s);
    }
    assert_eq!(h.bar.read32(0x1c) & 0x3, 1, "ready, not fatal");
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    // One block fits the page whatever LBA format a random Format NVM chose.
    let c = h.rw(1, nvm_opc::READ, 1, 0, 1, (buf.iova(), 0));
    assert_eq!(c.status, Status::SUCCESS);
}
