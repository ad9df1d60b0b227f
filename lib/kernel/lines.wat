;; The scan's line kernel (WebAssembly with 128-bit SIMD), assembled and optimized by `npm run
;; build` (lib/kernel/assemble.ts, Binaryen: the helpers below are inlined into `scan`) into
;; dist/lib/kernel/lines.wasm; lib/kernel/lines.ts drives it.
;;
;; `scan` walks the bytes [p, to) of its linear memory sixteen at a time: in each block, the bytes
;; equal to the delimiter and to a newline become two 16-bit masks (i8x16.eq, i8x16.bitmask). A
;; block adds its delimiter count (popcnt) to the line's field number; only a block where a wanted
;; field starts or ends (NB, below) is looked at bit by bit. An empty line is counted (global
;; `empty`). For each other complete line (its newline before `to`), on a line of `fc` fields it
;; reads the key (slot 0: 1 to 15 plain digits without a leading zero) and the amount (slot 1: 1 to
;; 15 digits with at most one '.' between two of them, as a scaled integer and its places). A line
;; whose key lies in [dBase, dEnd) and whose amount was read is a direct row: its window row
;; (key - dBase), amount and places go to three arrays (DIRECT, below; the places' maximum in
;; global `maxdp`), and nothing else. Any other line gets a 72-byte record at `out`:
;;   +0 start   +4 newline   +8 fields (delimiters + 1)   +12 end (the newline, or the CR before
;;   it)   +16 start of each wanted field (4 x i32, by slot)   +32 end of each wanted field (4 x
;;   i32, by slot)   +48 the key's value (f64, -1 when not read)   +56 the amount's (f64, -1)
;;   +64 the amount's places   +68 the line's index among the lines of this call
;; with positions plus `bias` (the caller's buffer coordinates). It stops after `max` records or
;; `max` direct rows, at the first line that starts at or past `stop`, or at the first line with no
;; newline before `to`, and leaves that line's start (memory coordinates) in the global `rest`,
;; the lines it took (empty ones too) in `lines`, the direct rows in `direct`.
;;
;; Memory (bytes): 256 FS (4 x i32) and 272 FE (4 x i32), the current line's wanted fields;
;; 1024 WANT (i32 per field index f: the slot field f fills, or -1; fields 0..nf);
;; 20480 NB (i32 per f < nf: the first delimiter index >= f that ends or starts a wanted field);
;; the caller's input area from 65536, the records from 1114176, DIRECT from 3473472: window
;; rows (i32), amounts at 3604544 (f64), places at 3866688 (i32), 32768 each; from 4194304 the
;; scanner's read buffer (2 MiB and 64 bytes: `scan` may read a block past `to`), which `scan`
;; reads in place (lines.ts).
(module
  (memory (export "memory") 97)
  (global $rest (export "rest") (mut i32) (i32.const 0))
  (global $direct (export "direct") (mut i32) (i32.const 0))
  (global $lines (export "lines") (mut i32) (i32.const 0))
  (global $empty (export "empty") (mut i32) (i32.const 0))
  (global $maxdp (export "maxdp") (mut i32) (i32.const 0))

  ;; The value of the n (1 to 8) digits that end at e, or -1 when a byte is not a digit: eight
  ;; bytes read as one little-endian i64 (the bytes before the field made '0'), checked and
  ;; combined in three multiplies (pairs, fours, eights) instead of one multiply-add per digit.
  (func $eight (param $e i32) (param $n i32) (result i64)
    (local $v i64) (local $sh i64)
    (local.set $v (i64.load (i32.sub (local.get $e) (i32.const 8))))
    (local.set $sh (i64.extend_i32_u (i32.shl (i32.sub (i32.const 8) (local.get $n)) (i32.const 3))))
    (local.set $v (i64.or
      (i64.and (local.get $v) (i64.shl (i64.const -1) (local.get $sh)))
      (i64.and (i64.const 0x3030303030303030) (i64.sub (i64.shl (i64.const 1) (local.get $sh)) (i64.const 1)))))
    (if (i32.or
          (i64.ne (i64.and (local.get $v) (i64.const 0xF0F0F0F0F0F0F0F0)) (i64.const 0x3030303030303030))
          (i64.ne (i64.and (i64.add (local.get $v) (i64.const 0x0606060606060606)) (i64.const 0xF0F0F0F0F0F0F0F0)) (i64.const 0x3030303030303030)))
      (then (return (i64.const -1))))
    (local.set $v (i64.and (local.get $v) (i64.const 0x0F0F0F0F0F0F0F0F)))
    (local.set $v (i64.and (i64.shr_u (i64.mul (local.get $v) (i64.const 2561)) (i64.const 8)) (i64.const 0x00FF00FF00FF00FF)))
    (local.set $v (i64.and (i64.shr_u (i64.mul (local.get $v) (i64.const 6553601)) (i64.const 16)) (i64.const 0x0000FFFF0000FFFF)))
    (i64.shr_u (i64.mul (local.get $v) (i64.const 42949672960001)) (i64.const 32)))

  ;; The value of the 1 to 15 digits [s, e), or -1.
  (func $uint (param $s i32) (param $e i32) (result i64)
    (local $n i32) (local $lo i64) (local $hi i64)
    (local.set $n (i32.sub (local.get $e) (local.get $s)))
    (if (i32.gt_u (i32.sub (local.get $n) (i32.const 1)) (i32.const 14)) (then (return (i64.const -1))))
    (if (i32.le_u (local.get $n) (i32.const 8)) (then (return (call $eight (local.get $e) (local.get $n)))))
    (local.set $lo (call $eight (local.get $e) (i32.const 8)))
    (local.set $hi (call $eight (i32.sub (local.get $e) (i32.const 8)) (i32.sub (local.get $n) (i32.const 8))))
    (if (i64.lt_s (i64.or (local.get $lo) (local.get $hi)) (i64.const 0)) (then (return (i64.const -1))))
    (i64.add (i64.mul (local.get $hi) (i64.const 100000000)) (local.get $lo)))

  ;; The value of the 1 to 15 digits [s, e) as f64, or -1.
  (func $value (param $s i32) (param $e i32) (result f64)
    (local $v i64)
    (local.set $v (call $uint (local.get $s) (local.get $e)))
    (if (i64.lt_s (local.get $v) (i64.const 0)) (then (return (f64.const -1))))
    (f64.convert_i64_u (local.get $v)))

  ;; The key's value: 1 to 15 plain digits without a leading zero, else -1.
  (func $key (param $s i32) (param $e i32) (result f64)
    (if (i32.and
          (i32.gt_s (i32.sub (local.get $e) (local.get $s)) (i32.const 1))
          (i32.eq (i32.load8_u (local.get $s)) (i32.const 48)))
      (then (return (f64.const -1))))
    (call $value (local.get $s) (local.get $e)))

  ;; The amount's value as a scaled integer, its decimal places in $dp: digits with at most one
  ;; '.' between two of them (15 digits at most), else -1 (the caller parses it: signs, a decimal
  ;; comma, exponents, blanks).
  (global $dp (mut i32) (i32.const 0))
  (func $amount (param $s i32) (param $e i32) (result f64)
    (local $n i32) (local $dm i32) (local $d i32) (local $f i32) (local $ip i64) (local $fp i64)
    (global.set $dp (i32.const 0))
    (local.set $n (i32.sub (local.get $e) (local.get $s)))
    (if (i32.gt_u (i32.sub (local.get $n) (i32.const 1)) (i32.const 15)) (then (return (f64.const -1))))
    ;; the dots among the field's bytes
    (local.set $dm (i32.and
      (i8x16.bitmask (i8x16.eq (v128.load (local.get $s)) (i8x16.splat (i32.const 46))))
      (i32.sub (i32.shl (i32.const 1) (local.get $n)) (i32.const 1))))
    (if (i32.eqz (local.get $dm)) (then (return (call $value (local.get $s) (local.get $e)))))
    (if (i32.and (local.get $dm) (i32.sub (local.get $dm) (i32.const 1))) (then (return (f64.const -1))))
    (local.set $d (i32.ctz (local.get $dm)))
    (local.set $f (i32.sub (i32.sub (local.get $n) (local.get $d)) (i32.const 1)))
    (if (i32.or (i32.eqz (local.get $d)) (i32.eqz (local.get $f))) (then (return (f64.const -1))))
    (local.set $ip (call $uint (local.get $s) (i32.add (local.get $s) (local.get $d))))
    (local.set $fp (call $uint (i32.add (i32.add (local.get $s) (local.get $d)) (i32.const 1)) (local.get $e)))
    (if (i64.lt_s (i64.or (local.get $ip) (local.get $fp)) (i64.const 0)) (then (return (f64.const -1))))
    (global.set $dp (local.get $f))
    (block $done
      (loop $scale
        (br_if $done (i32.eqz (local.get $f)))
        (local.set $ip (i64.mul (local.get $ip) (i64.const 10)))
        (local.set $f (i32.sub (local.get $f) (i32.const 1)))
        (br $scale)))
    (f64.convert_i64_u (i64.add (local.get $ip) (local.get $fp))))

  (func (export "scan")
    (param $p i32) (param $to i32) (param $out i32) (param $max i32) (param $bias i32)
    (param $stop i32) (param $delim i32) (param $nf i32) (param $fc i32) (param $dBase f64) (param $dEnd f64)
    (result i32)
    (local $kv f64) (local $av f64) (local $emit i32) (local $nd i32) (local $lines i32) (local $empty i32)
    (local $maxdp i32) (local $ce i32) (local $i i32) (local $dm i32) (local $nm i32) (local $valid i32) (local $t i32) (local $m i32)
    (local $pc i32) (local $f i32) (local $s i32) (local $pos i32) (local $start i32) (local $n i32)
    (local $want0 i32) (local $v v128) (local $D v128) (local $N v128)
    (local.set $D (i8x16.splat (local.get $delim)))
    (local.set $N (i8x16.splat (i32.const 10)))
    (local.set $start (local.get $p))
    (local.set $want0 (i32.load offset=1024 (i32.const 0)))
    (if (i32.ge_s (local.get $want0) (i32.const 0))
      (then (i32.store offset=256 (i32.shl (local.get $want0) (i32.const 2)) (i32.add (local.get $start) (local.get $bias)))))
    (local.set $i (i32.and (local.get $p) (i32.const -16)))
    ;; every way out (the range's end, a full area, the bytes' end) leaves through $done
    (block $done
      (br_if $done (i32.ge_s (local.get $p) (local.get $stop)))
      (loop $blocks
        (br_if $done (i32.ge_u (local.get $i) (local.get $to)))
        (local.set $v (v128.load (local.get $i)))
        (local.set $dm (i8x16.bitmask (i8x16.eq (local.get $v) (local.get $D))))
        (local.set $nm (i8x16.bitmask (i8x16.eq (local.get $v) (local.get $N))))
        ;; only the bytes of [p, to) count
        (if (i32.lt_u (local.get $i) (local.get $p))
          (then
            (local.set $valid (i32.shl (i32.const -1) (i32.sub (local.get $p) (local.get $i))))
            (local.set $dm (i32.and (local.get $dm) (local.get $valid)))
            (local.set $nm (i32.and (local.get $nm) (local.get $valid)))))
        (if (i32.gt_u (i32.add (local.get $i) (i32.const 16)) (local.get $to))
          (then
            (local.set $valid (i32.sub (i32.shl (i32.const 1) (i32.sub (local.get $to) (local.get $i))) (i32.const 1)))
            (local.set $dm (i32.and (local.get $dm) (local.get $valid)))
            (local.set $nm (i32.and (local.get $nm) (local.get $valid)))))
        ;; each segment of the block: its delimiters up to the next newline (or the block's end)
        (loop $segments
          (local.set $m (local.get $dm))
          (if (local.get $nm)
            (then
              (local.set $t (i32.ctz (local.get $nm)))
              (local.set $m (i32.and (local.get $dm) (i32.sub (i32.shl (i32.const 1) (local.get $t)) (i32.const 1))))))
          (if (local.get $m)
            (then
              (local.set $pc (i32.popcnt (local.get $m)))
              (if (i32.and
                    (i32.lt_s (local.get $f) (local.get $nf))
                    (i32.gt_s (i32.add (local.get $f) (local.get $pc)) (i32.load offset=20480 (i32.shl (local.get $f) (i32.const 2)))))
                (then
                  ;; a wanted field starts or ends here: each delimiter in turn
                  (block $bitsDone
                    (loop $bits
                      (br_if $bitsDone (i32.eqz (local.get $m)))
                      (if (i32.lt_s (local.get $f) (local.get $nf))
                        (then
                          (local.set $pos (i32.add (i32.add (local.get $i) (i32.ctz (local.get $m))) (local.get $bias)))
                          (local.set $s (i32.load offset=1024 (i32.shl (local.get $f) (i32.const 2))))
                          (if (i32.ge_s (local.get $s) (i32.const 0))
                            (then (i32.store offset=272 (i32.shl (local.get $s) (i32.const 2)) (local.get $pos))))
                          (local.set $s (i32.load offset=1028 (i32.shl (local.get $f) (i32.const 2))))
                          (if (i32.ge_s (local.get $s) (i32.const 0))
                            (then (i32.store offset=256 (i32.shl (local.get $s) (i32.const 2)) (i32.add (local.get $pos) (i32.const 1)))))))
                      (local.set $f (i32.add (local.get $f) (i32.const 1)))
                      (local.set $m (i32.and (local.get $m) (i32.sub (local.get $m) (i32.const 1))))
                      (br $bits))))
                (else (local.set $f (i32.add (local.get $f) (local.get $pc)))))))
          (if (local.get $nm)
            (then
              ;; a line ends at i + t (its content at ce, before a CR)
              (local.set $ce (i32.add (local.get $i) (local.get $t)))
              (if (i32.gt_s (local.get $ce) (local.get $start))
                (then
                  (if (i32.eq (i32.load8_u (i32.sub (local.get $ce) (i32.const 1))) (i32.const 13))
                    (then (local.set $ce (i32.sub (local.get $ce) (i32.const 1)))))))
              (if (i32.eq (local.get $ce) (local.get $start))
                (then (local.set $empty (i32.add (local.get $empty) (i32.const 1))))
                (else
                  ;; the end of its last field
                  (if (i32.lt_s (local.get $f) (local.get $nf))
                    (then
                      (local.set $s (i32.load offset=1024 (i32.shl (local.get $f) (i32.const 2))))
                      (if (i32.ge_s (local.get $s) (i32.const 0))
                        (then (i32.store offset=272 (i32.shl (local.get $s) (i32.const 2)) (i32.add (local.get $ce) (local.get $bias)))))))
                  (local.set $kv (f64.const -1))
                  (local.set $av (f64.const -1))
                  (local.set $emit (i32.const 1))
                  (if (i32.eq (i32.add (local.get $f) (i32.const 1)) (local.get $fc))
                    (then
                      (local.set $kv (call $key
                        (i32.sub (i32.load offset=256 (i32.const 0)) (local.get $bias))
                        (i32.sub (i32.load offset=272 (i32.const 0)) (local.get $bias))))
                      (local.set $av (call $amount
                        (i32.sub (i32.load offset=260 (i32.const 0)) (local.get $bias))
                        (i32.sub (i32.load offset=276 (i32.const 0)) (local.get $bias))))
                      (if (i32.and (i32.and (f64.ge (local.get $kv) (local.get $dBase)) (f64.lt (local.get $kv) (local.get $dEnd)))
                                   (f64.ge (local.get $av) (f64.const 0)))
                        (then
                          ;; a direct row: its window row, amount and places, no record
                          (i32.store offset=3473472 (i32.shl (local.get $nd) (i32.const 2))
                            (i32.trunc_sat_f64_u (f64.sub (local.get $kv) (local.get $dBase))))
                          (f64.store offset=3604544 (i32.shl (local.get $nd) (i32.const 3)) (local.get $av))
                          (i32.store offset=3866688 (i32.shl (local.get $nd) (i32.const 2)) (global.get $dp))
                          (if (i32.gt_s (global.get $dp) (local.get $maxdp)) (then (local.set $maxdp (global.get $dp))))
                          (local.set $nd (i32.add (local.get $nd) (i32.const 1)))
                          (local.set $emit (i32.const 0))))))
                  (if (local.get $emit)
                    (then
                      (i32.store offset=0 (local.get $out) (i32.add (local.get $start) (local.get $bias)))
                      (i32.store offset=4 (local.get $out) (i32.add (i32.add (local.get $i) (local.get $t)) (local.get $bias)))
                      (i32.store offset=8 (local.get $out) (i32.add (local.get $f) (i32.const 1)))
                      (i32.store offset=12 (local.get $out) (i32.add (local.get $ce) (local.get $bias)))
                      (v128.store offset=16 (local.get $out) (v128.load offset=256 (i32.const 0)))
                      (v128.store offset=32 (local.get $out) (v128.load offset=272 (i32.const 0)))
                      (f64.store offset=48 (local.get $out) (local.get $kv))
                      (f64.store offset=56 (local.get $out) (local.get $av))
                      (i32.store offset=64 (local.get $out) (global.get $dp))
                      (i32.store offset=68 (local.get $out) (local.get $lines))
                      (local.set $out (i32.add (local.get $out) (i32.const 72)))
                      (local.set $n (i32.add (local.get $n) (i32.const 1)))))))
              (local.set $lines (i32.add (local.get $lines) (i32.const 1)))
              (local.set $start (i32.add (i32.add (local.get $i) (local.get $t)) (i32.const 1)))
              (local.set $f (i32.const 0))
              (if (i32.ge_s (local.get $want0) (i32.const 0))
                (then (i32.store offset=256 (i32.shl (local.get $want0) (i32.const 2)) (i32.add (local.get $start) (local.get $bias)))))
              (if (i32.or
                    (i32.or (i32.ge_u (local.get $n) (local.get $max)) (i32.ge_u (local.get $nd) (local.get $max)))
                    (i32.ge_s (local.get $start) (local.get $stop)))
                (then (br $done)))
              ;; the delimiters and newlines after this one
              (local.set $dm (i32.and (local.get $dm) (i32.xor (i32.sub (i32.shl (i32.const 2) (local.get $t)) (i32.const 1)) (i32.const -1))))
              (local.set $nm (i32.and (local.get $nm) (i32.sub (local.get $nm) (i32.const 1))))
              (br $segments))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $blocks)))
    (global.set $rest (local.get $start))
    (global.set $direct (local.get $nd))
    (global.set $lines (local.get $lines))
    (global.set $empty (local.get $empty))
    (global.set $maxdp (local.get $maxdp))
    (local.get $n))
)
