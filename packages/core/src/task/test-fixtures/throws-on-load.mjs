// A task module whose top level throws while it loads.
throw new Error('cannot find ./spam.csv');
