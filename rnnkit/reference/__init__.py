"""From-scratch NumPy RNN, LSTM and GRU with hand-written backpropagation through time.

Each cell is one small file with the same four functions, float64 throughout:

    init(input_size, hidden_size, rng) -> params        forward(params, xs, ...) -> hs, cache
    from_torch(module, layer=0) -> params               backward(params, cache, dhs, ...) -> grads

Parameter names follow the math (min-char-rnn's ``Wxh``, ``Whh``), gradients add a ``d``
(``dWxh``), and each maps one to one onto torch.nn's parameters, gates stacked in torch's order
(LSTM i, f, g, o; GRU r, z, n):

    reference   torch.nn / rnnkit      shape (RNN, LSTM, GRU)
    Wxh         weight_ih (_l{k})      (h, i), (4h, i), (3h, i)
    Whh         weight_hh (_l{k})      (h, h), (4h, h), (3h, h)
    bxh         bias_ih   (_l{k})      (h,),   (4h,),   (3h,)
    bhh         bias_hh   (_l{k})      (h,),   (4h,),   (3h,)

so ``lstm.from_torch(rnnkit.LSTMCell(...))`` gives the reference exactly the weights of a torch
cell, and the tests compare the two gradients. `hello` is the worked example (vocabulary h, e,
l, o; 3 hidden units; "hello"), with a gradient check against finite differences.
"""

from rnnkit.reference import gru, lstm, rnn

__all__ = ["rnn", "lstm", "gru"]
