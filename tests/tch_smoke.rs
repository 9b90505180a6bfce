//! The set-up's libtorch links and computes: a small MLP forward and backward
//! pass through tch, with a gradient step that lowers the loss.
use tch::{nn, nn::Module, nn::OptimizerConfig, Device, Kind, Tensor};

#[test]
fn mlp_forward_backward_lowers_loss() {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let net = nn::seq().add(nn::linear(&root / "l1", 4, 16, Default::default())).add_fn(|x| x.relu()).add(nn::linear(
        &root / "l2",
        16,
        1,
        Default::default(),
    ));
    let x = Tensor::randn([64, 4], (Kind::Float, Device::Cpu));
    let y = x.sum_dim_intlist([1i64].as_slice(), true, Kind::Float);
    let mut opt = nn::Adam::default().build(&vs, 1e-2).expect("optimizer");
    let first = net.forward(&x).mse_loss(&y, tch::Reduction::Mean).double_value(&[]);
    for _ in 0..200 {
        let loss = net.forward(&x).mse_loss(&y, tch::Reduction::Mean);
        opt.backward_step(&loss);
    }
    let last = net.forward(&x).mse_loss(&y, tch::Reduction::Mean).double_value(&[]);
    assert!(last < first * 0.1, "loss did not fall: {first} -> {last}");
}
