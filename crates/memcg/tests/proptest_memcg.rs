//! Random create / charge / uncharge / zswap charge / offline / remove
//! sequences against a plain model: every counter stays exact.
#![cfg(not(loom))]

use std::string::String;

use kbase::{Error, Gfp, PAGE_SIZE};
use memcg::{MemcgEvent, MemcgRef, MemcgTree, NoReclaim, ObjCgroupRef, PAGE_COUNTER_MAX};
use proptest::prelude::*;

const P: u64 = PAGE_SIZE as u64;

#[derive(Clone, Debug)]
enum Op {
    Create(usize),
    Charge(usize, u64),
    Uncharge(usize),
    ZswapCharge(usize, usize),
    ZswapUncharge(usize),
    SwapCharge(usize, u64),
    SwapUncharge(usize),
    Event(usize, u64),
    SetMax(usize, Option<u64>),
    Offline(usize),
    Remove(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<usize>().prop_map(Op::Create),
        4 => (any::<usize>(), 1u64..4).prop_map(|(i, n)| Op::Charge(i, n)),
        2 => any::<usize>().prop_map(Op::Uncharge),
        // A raw (incompressible) page is charged with exactly PAGE_SIZE.
        3 => (any::<usize>(), prop_oneof![3 => 1usize..PAGE_SIZE, 1 => Just(PAGE_SIZE)])
            .prop_map(|(i, s)| Op::ZswapCharge(i, s)),
        2 => any::<usize>().prop_map(Op::ZswapUncharge),
        1 => (any::<usize>(), 1u64..4).prop_map(|(i, n)| Op::SwapCharge(i, n)),
        1 => any::<usize>().prop_map(Op::SwapUncharge),
        1 => (any::<usize>(), 1u64..3).prop_map(|(i, n)| Op::Event(i, n)),
        2 => (any::<usize>(), proptest::option::of(0u64..12)).prop_map(|(i, m)| Op::SetMax(i, m)),
        2 => any::<usize>().prop_map(Op::Offline),
        1 => any::<usize>().prop_map(Op::Remove),
    ]
}

/// The model of one cgroup ever created.
struct MNode {
    handle: MemcgRef,
    path: String,
    parent: Option<usize>,
    online: bool,
    linked: bool,
    /// memory.max in bytes.
    max: u64,
    /// Events counted with this node as the effective cgroup.
    zswpout: u64,
}

/// A charge outstanding: what was charged, through which handle, and which
/// node owns it now (the effective cgroup, moved up by offlines).
enum Rec {
    Pages(MemcgRef, u64, usize),
    Zswap(ObjCgroupRef, usize, usize),
    Swap(MemcgRef, u64, usize),
}

struct Model {
    nodes: Vec<MNode>,
    recs: Vec<Rec>,
    next_name: u32,
}

impl Model {
    fn effective(&self, mut i: usize) -> usize {
        while !self.nodes[i].online {
            i = self.nodes[i].parent.unwrap();
        }
        i
    }

    fn is_ancestor_or_self(&self, anc: usize, mut i: usize) -> bool {
        loop {
            if i == anc {
                return true;
            }
            match self.nodes[i].parent {
                Some(p) => i = p,
                None => return false,
            }
        }
    }

    /// (memory bytes, zswap bytes, swap pages) hierarchical at `i`.
    fn hier(&self, i: usize) -> (u64, u64, u64) {
        let mut t = (0, 0, 0);
        if !self.nodes[i].online {
            return t;
        }
        for r in &self.recs {
            match r {
                Rec::Pages(_, n, o) if self.is_ancestor_or_self(i, *o) => t.0 += n * P,
                Rec::Zswap(_, s, o) if self.is_ancestor_or_self(i, *o) => {
                    t.0 += *s as u64;
                    t.1 += *s as u64;
                }
                Rec::Swap(_, n, o) if self.is_ancestor_or_self(i, *o) => t.2 += n,
                _ => {}
            }
        }
        t
    }

    fn local_zswap(&self, i: usize) -> u64 {
        self.recs
            .iter()
            .map(|r| match r {
                Rec::Zswap(_, s, o) if *o == i => *s as u64,
                _ => 0,
            })
            .sum()
    }

    /// (`zswapped`, `zswap_incomp`) in bytes: pages held in zswap and those
    /// of them stored raw, charged to `i` itself (`local`) or to `i` and its
    /// descendants.
    fn zswapped(&self, i: usize, local: bool) -> (u64, u64) {
        let mut t = (0, 0);
        if !local && !self.nodes[i].online {
            return t;
        }
        for r in &self.recs {
            if let Rec::Zswap(_, s, o) = r {
                let mine = if local {
                    *o == i
                } else {
                    self.is_ancestor_or_self(i, *o)
                };
                if mine {
                    t.0 += P;
                    if *s == PAGE_SIZE {
                        t.1 += P;
                    }
                }
            }
        }
        t
    }

    fn hier_zswpout(&self, i: usize) -> u64 {
        (0..self.nodes.len())
            .filter(|j| self.is_ancestor_or_self(i, *j))
            .map(|j| self.nodes[j].zswpout)
            .sum()
    }

    fn pick(&self, x: usize) -> usize {
        x % self.nodes.len()
    }

    fn move_owner(&mut self, from: usize, to: usize) {
        for r in &mut self.recs {
            let o = match r {
                Rec::Pages(_, _, o) | Rec::Zswap(_, _, o) | Rec::Swap(_, _, o) => o,
            };
            if *o == from {
                *o = to;
            }
        }
    }
}

fn run(ops: Vec<Op>) {
    let t = MemcgTree::new(Gfp::KERNEL).unwrap();
    let mut m = Model {
        nodes: vec![MNode {
            handle: t.root(),
            path: String::new(),
            parent: None,
            online: true,
            linked: true,
            max: PAGE_COUNTER_MAX,
            zswpout: 0,
        }],
        recs: Vec::new(),
        next_name: 0,
    };
    for op in ops {
        match op {
            Op::Create(x) => {
                let p = m.pick(x);
                let name = format!("n{}", m.next_name);
                m.next_name += 1;
                let path = if p == 0 {
                    name
                } else {
                    format!("{}/{}", m.nodes[p].path, name)
                };
                let r = t.create(&path, Gfp::KERNEL);
                if m.nodes[p].online && m.nodes[p].linked {
                    let h = r.unwrap();
                    assert_eq!(h.path(), path);
                    m.nodes.push(MNode {
                        handle: h,
                        path,
                        parent: Some(p),
                        online: true,
                        linked: true,
                        max: PAGE_COUNTER_MAX,
                        zswpout: 0,
                    });
                } else {
                    assert_eq!(r.unwrap_err(), Error::ENOENT);
                }
            }
            Op::Charge(x, n) => {
                let i = m.pick(x);
                let e = m.effective(i);
                // Fits at every level from the effective cgroup up?
                let mut fits = true;
                let mut l = Some(e);
                while let Some(j) = l {
                    if m.hier(j).0 + n * P > m.nodes[j].max {
                        fits = false;
                    }
                    l = m.nodes[j].parent;
                }
                let h = m.nodes[i].handle.clone();
                let r = t.try_charge(&h, n, Gfp::KERNEL, &NoReclaim);
                if fits {
                    r.unwrap();
                    m.recs.push(Rec::Pages(h, n, e));
                } else {
                    assert_eq!(r, Err(Error::ENOMEM));
                }
            }
            Op::ZswapCharge(x, s) => {
                let i = m.pick(x);
                let e = m.effective(i);
                let objcg = m.nodes[i].handle.obj_cgroup().unwrap();
                assert!(std::ptr::eq(&*objcg.memcg(), &*m.nodes[e].handle));
                objcg.charge_zswap(s);
                m.recs.push(Rec::Zswap(objcg, s, e));
            }
            Op::SwapCharge(x, n) => {
                let i = m.pick(x);
                let e = m.effective(i);
                let h = m.nodes[i].handle.clone();
                h.swap_charge(n);
                m.recs.push(Rec::Swap(h, n, e));
            }
            Op::Uncharge(x) | Op::ZswapUncharge(x) | Op::SwapUncharge(x) => {
                if m.recs.is_empty() {
                    continue;
                }
                let k = x % m.recs.len();
                match m.recs.swap_remove(k) {
                    Rec::Pages(h, n, _) => t.uncharge(&h, n),
                    Rec::Zswap(o, s, _) => o.uncharge_zswap(s),
                    Rec::Swap(h, n, _) => h.swap_uncharge(n),
                }
            }
            Op::Event(x, n) => {
                let i = m.pick(x);
                let e = m.effective(i);
                m.nodes[i].handle.count_event(MemcgEvent::Zswpout, n);
                m.nodes[e].zswpout += n;
            }
            Op::SetMax(x, pages) => {
                let i = m.pick(x);
                let v = match pages {
                    Some(p) => format!("{}", p * P),
                    None => "max".into(),
                };
                let r = m.nodes[i].handle.set_memory_max(&v);
                if i == 0 {
                    assert_eq!(r, Err(Error::EINVAL));
                } else {
                    r.unwrap();
                    m.nodes[i].max = pages.map_or(PAGE_COUNTER_MAX, |p| p * P);
                }
            }
            Op::Offline(x) | Op::Remove(x) => {
                let remove = matches!(op, Op::Remove(_));
                let i = m.pick(x);
                let path = m.nodes[i].path.clone();
                let r = if remove {
                    t.remove(&path)
                } else {
                    t.offline(&path)
                };
                let n = &m.nodes[i];
                let children: Vec<usize> = (0..m.nodes.len())
                    .filter(|j| m.nodes[*j].parent == Some(i) && m.nodes[*j].linked)
                    .collect();
                let expect = if !n.linked {
                    Err(Error::ENOENT)
                } else if i == 0 {
                    Err(Error::EINVAL)
                } else if remove && !children.is_empty() {
                    Err(Error::EBUSY)
                } else if !remove && !n.online {
                    Err(Error::EINVAL)
                } else if !remove && children.iter().any(|c| m.nodes[*c].online) {
                    Err(Error::EBUSY)
                } else {
                    Ok(())
                };
                match (r, expect) {
                    (Ok(o), Ok(())) => {
                        let parent = m.nodes[i].parent.unwrap();
                        assert!(std::ptr::eq(&*o.parent, &*m.nodes[parent].handle));
                        if m.nodes[i].online {
                            m.nodes[i].online = false;
                            m.move_owner(i, parent);
                        }
                        if remove {
                            m.nodes[i].linked = false;
                        }
                    }
                    (Err(a), Err(b)) => assert_eq!(a, b),
                    (a, b) => panic!("offline/remove {path:?}: got {a:?}, model {b:?}"),
                }
            }
        }
        check(&t, &m);
    }
    // Uncharge everything: all counters return to zero.
    for r in m.recs.drain(..) {
        match r {
            Rec::Pages(h, n, _) => t.uncharge(&h, n),
            Rec::Zswap(o, s, _) => o.uncharge_zswap(s),
            Rec::Swap(h, n, _) => h.swap_uncharge(n),
        }
    }
    for n in &m.nodes {
        assert_eq!(n.handle.memory_current(), 0);
        assert_eq!(n.handle.zswap_current(), 0);
        assert_eq!(n.handle.swap_current(), 0);
        assert_eq!(n.handle.stat_local().zswap, 0);
        let (st, local) = (n.handle.stat(), n.handle.stat_local());
        assert_eq!((st.zswapped, st.zswap_incomp), (0, 0), "{}", n.path);
        assert_eq!((local.zswapped, local.zswap_incomp), (0, 0), "{}", n.path);
    }
}

fn check(t: &MemcgTree, m: &Model) {
    for (i, n) in m.nodes.iter().enumerate() {
        let (mem, zs, swap) = m.hier(i);
        let h = &n.handle;
        assert_eq!(h.is_online(), n.online, "{}", n.path);
        assert_eq!(h.memory_current(), mem, "memory.current of {:?}", n.path);
        assert_eq!(h.zswap_current(), zs, "zswap of {:?}", n.path);
        assert_eq!(h.swap_current(), swap * P, "swap of {:?}", n.path);
        assert_eq!(
            h.stat_local().zswap,
            m.local_zswap(i),
            "local zswap of {:?}",
            n.path
        );
        assert_eq!(
            h.stat().zswpout,
            m.hier_zswpout(i),
            "zswpout of {:?}",
            n.path
        );
        assert_eq!(h.stat_local().zswpout, n.zswpout);
        let (st, local) = (h.stat(), h.stat_local());
        assert_eq!(
            (st.zswapped, st.zswap_incomp),
            m.zswapped(i, false),
            "zswapped, zswap_incomp of {:?}",
            n.path
        );
        assert_eq!(
            (local.zswapped, local.zswap_incomp),
            m.zswapped(i, true),
            "local zswapped, zswap_incomp of {:?}",
            n.path
        );
        if n.linked {
            let found = t.lookup(&n.path).unwrap();
            assert!(std::ptr::eq(&*found, &**h));
        }
        assert!(std::ptr::eq(&*t.get(h.id()).unwrap(), &**h));
    }
    // Iteration visits exactly the online cgroups.
    let mut seen = 0;
    let mut it = t.iter_next(None);
    while let Some(c) = it {
        assert!(c.is_online());
        seen += 1;
        it = t.iter_next(Some(&c));
    }
    assert_eq!(seen, m.nodes.iter().filter(|n| n.online).count());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn counters_match_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any input gets a value or EINVAL, never a panic; numbers with a
    /// suffix parse to the binary multiple, or EINVAL on overflow.
    #[test]
    fn parse_never_panics_and_scales(s in ".{0,24}", n in any::<u32>(), k in 0usize..7) {
        let _ = memcg::parse_bytes(&s);
        let _ = memcg::parse_limit_pages(&s);
        let _ = memcg::parse_bool01(&s);
        let suffix = ["", "K", "M", "G", "T", "P", "E"][k];
        let expect = u64::from(n).checked_mul(1u64 << (10 * k));
        let got = memcg::parse_bytes(&format!("{n}{suffix}"));
        match expect {
            Some(v) => prop_assert_eq!(got, Ok(v)),
            None => prop_assert_eq!(got, Err(Error::EINVAL)),
        }
    }

    /// A failed limit write leaves the limit as it was.
    #[test]
    fn bad_limit_writes_change_nothing(s in "[-+a-z0-9 .]{1,12}") {
        let t = MemcgTree::new(Gfp::KERNEL).unwrap();
        let a = t.create("a", Gfp::KERNEL).unwrap();
        a.set_memory_max("64K").unwrap();
        a.set_zswap_max("8K").unwrap();
        if a.set_memory_max(&s).is_err() {
            prop_assert_eq!(a.memory_max(), 64 << 10);
        }
        if a.set_zswap_max(&s).is_err() {
            prop_assert_eq!(a.zswap_max_pages(), 2);
        }
    }
}
